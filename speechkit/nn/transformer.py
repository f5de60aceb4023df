"""Pre-LayerNorm Transformer layers: an encoder layer and a decoder layer with a KV cache.

Shapes: B batch, T/L time (encoder frames / decoder tokens), S memory length, D model width,
H heads, Dh = D / H. Masks are boolean with True = keep (see ``nn/attention.py``). The FFN
activation is GELU unless given (ESPnet's Transformer layers use ReLU).

Gates (``nn/gates.py``): the encoder layer's attention and FFN, the decoder layer's
self-attention, cross-attention and FFN can be switched off; an off module is not computed
(a decoder layer with self-attention off keeps no K/V; one with cross-attention off needs no
cross K/V). ``drop`` builds a layer without some of them (a pruned model), ``ffn_width`` with
a narrower FFN (a pruned model that kept some of its channel groups).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from speechkit.nn.attention import MultiHeadAttention
from speechkit.nn.feedforward import FeedForward
from speechkit.nn.gates import GatedLayer, Gates, run_by_pattern, scaled

__all__ = ["TransformerDecoderLayer", "TransformerEncoderLayer"]

KV = tuple[Tensor, Tensor]  # keys, values: (B, H, S, Dh) each


def _check_drop(drop: Collection[str], gated: tuple[str, ...]) -> None:
    unknown = set(drop) - set(gated)
    if unknown:
        raise ValueError(f"cannot drop {sorted(unknown)}; gated modules: {gated}")


class TransformerEncoderLayer(GatedLayer):
    """x + MHSA(LN(x)), then x + FFN(LN(x)). (B, T, D) -> (B, T, D)."""

    GATED = ("attn", "ffn")  # gate order (nn/gates.py)
    FFNS = ("ffn",)  # may be gated per channel group

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ffn: int,
        dropout: float,
        attention_dropout: float,
        activation: Literal["gelu", "relu", "swish"] = "gelu",
        drop: Collection[str] = (),
        ffn_widths: Mapping[str, int] | None = None,
    ):
        super().__init__()
        _check_drop(drop, self.GATED)
        d_ffn = dict(ffn_widths or {}).get("ffn", d_ffn)
        attn, ffn = "attn" not in drop, "ffn" not in drop
        self.attn_norm = nn.LayerNorm(d_model) if attn else None
        self.attn = MultiHeadAttention(d_model, n_heads, attention_dropout) if attn else None
        self.ffn_norm = nn.LayerNorm(d_model) if ffn else None
        self.ffn = FeedForward(d_model, d_ffn, dropout, activation=activation) if ffn else None
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, pad_mask: Tensor, lens: Tensor | None = None, gates: Gates = None
    ) -> Tensor:
        """``pad_mask`` (B, T) bool, True = valid frame; padded frames are never attended to.
        ``lens`` (B,): the valid frames ``pad_mask`` was made from, if known (lets the
        ``triton`` attention skip the padding without reading the mask; see nn/attention).
        ``gates``: see ``nn/gates.py`` (order ``gate_names``)."""
        if isinstance(gates, Tensor) and gates.dtype == torch.bool:
            return run_by_pattern(self.forward, x, gates, (pad_mask, lens))
        (g_attn, _), (g_ffn, groups) = (self.gate(gates, name) for name in self.GATED)
        if g_attn is not False:
            attn = self.attn(self.attn_norm(x), pad_mask[:, None, None, :], key_lens=lens)
            x = x + scaled(self.dropout(attn), g_attn)
        if g_ffn is not False:
            x = x + scaled(self.dropout(self.ffn(self.ffn_norm(x), groups)), g_ffn)
        return x


class TransformerDecoderLayer(GatedLayer):
    """Causal self-attention, cross-attention over the encoder output, FFN; all pre-LN."""

    FSDP_FORWARD_METHODS = ("cross_kv",)  # called besides forward (speechkit.train.distributed)
    GATED = ("self_attn", "cross_attn", "ffn")  # gate order (nn/gates.py)
    FFNS = ("ffn",)  # may be gated per channel group (last: cross_attn stays gate 1)

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ffn: int,
        dropout: float,
        attention_dropout: float,
        activation: Literal["gelu", "relu", "swish"] = "gelu",
        drop: Collection[str] = (),
        ffn_widths: Mapping[str, int] | None = None,
    ):
        super().__init__()
        _check_drop(drop, self.GATED)
        d_ffn = dict(ffn_widths or {}).get("ffn", d_ffn)
        on = {name: name not in drop for name in self.GATED}
        mha = lambda: MultiHeadAttention(d_model, n_heads, attention_dropout)  # noqa: E731
        self.self_norm = nn.LayerNorm(d_model) if on["self_attn"] else None
        self.self_attn = mha() if on["self_attn"] else None
        self.cross_norm = nn.LayerNorm(d_model) if on["cross_attn"] else None
        self.cross_attn = mha() if on["cross_attn"] else None
        self.ffn_norm = nn.LayerNorm(d_model) if on["ffn"] else None
        self.ffn = (
            FeedForward(d_model, d_ffn, dropout, activation=activation) if on["ffn"] else None
        )
        self.dropout = nn.Dropout(dropout)

    def cross_kv(self, memory: Tensor) -> KV | None:
        """Cross-attention keys/values of the encoder output ``memory`` (B, S, D); None for a
        layer built without cross-attention."""
        return None if self.cross_attn is None else self.cross_attn.project_kv(memory)

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor,
        cross: KV | None,
        cross_mask: Tensor,
        past: KV | None = None,
        gates: Gates = None,
    ) -> tuple[Tensor, KV | None]:
        """Runs ``x`` (B, l, D), the l newest tokens, and returns (B, l, D) and the self-attn KV.

        ``past``: keys/values of the earlier tokens (B, H, t, Dh), or None at the start.
        ``self_mask``: (l, t + l) bool causal mask. ``cross``: (U, H, S, Dh) each, and
        ``cross_mask`` (U, 1, 1, S) bool, for U encoder rows with B a multiple of U: rows
        ``[j * B // U, (j + 1) * B // U)`` of ``x`` attend over encoder row j (beams of one
        utterance; see ``DecoderCache``).
        The returned KV covers all t + l tokens, ready to be the next call's ``past`` (None
        when self-attention is off). ``gates``: a tuple (whole batch) or float (B, 3) relaxed
        gates (order ``gate_names``; see nn/gates.py); ``cross`` may be None when
        cross-attention is off.
        """
        if isinstance(gates, Tensor) and gates.dtype == torch.bool:
            raise ValueError("decoder gates are a tuple per batch: group rows by gate pattern")
        (g_self, _), (g_cross, _), (g_ffn, groups) = (self.gate(gates, n) for n in self.GATED)
        kv = None
        if g_self is not False:
            h = self.self_norm(x)
            k, v = self.self_attn.project_kv(h)
            if past is not None:
                k = torch.cat([past[0], k], dim=2)
                v = torch.cat([past[1], v], dim=2)
            x = x + scaled(self.dropout(self.self_attn.attend(h, k, v, self_mask)), g_self)
            kv = (k, v)
        if g_cross is not False:
            h = self.cross_norm(x)
            rows, length, dim = h.shape
            group = rows // cross[0].shape[0]
            if group * cross[0].shape[0] != rows:
                raise ValueError(
                    f"{rows} decoder rows cannot share {cross[0].shape[0]} encoder rows"
                )
            # No mask between cross-attention queries: the `group` rows that share an encoder
            # row attend as one query sequence, so its K/V are read once, not once per beam.
            h = h.reshape(rows // group, group * length, dim)
            out = self.cross_attn.attend(h, cross[0], cross[1], cross_mask)
            x = x + scaled(self.dropout(out.reshape(rows, length, dim)), g_cross)
        if g_ffn is not False:
            x = x + scaled(self.dropout(self.ffn(self.ffn_norm(x), groups)), g_ffn)
        return x, kv
