"""Pre-LayerNorm Transformer layers: an encoder layer and a decoder layer with a KV cache.

Shapes: B batch, T/L time (encoder frames / decoder tokens), S memory length, D model width,
H heads, Dh = D / H. Masks are boolean with True = keep (see ``nn/attention.py``). The FFN
activation is GELU unless given (ESPnet's Transformer layers use ReLU).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from speechkit.nn.attention import MultiHeadAttention
from speechkit.nn.feedforward import FeedForward

__all__ = ["TransformerDecoderLayer", "TransformerEncoderLayer"]

KV = tuple[Tensor, Tensor]  # keys, values: (B, H, S, Dh) each


class TransformerEncoderLayer(nn.Module):
    """x + MHSA(LN(x)), then x + FFN(LN(x)). (B, T, D) -> (B, T, D)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ffn: int,
        dropout: float,
        attention_dropout: float,
        activation: Literal["gelu", "relu", "swish"] = "gelu",
    ):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ffn, dropout, activation=activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad_mask: Tensor, lens: Tensor | None = None) -> Tensor:
        """``pad_mask`` (B, T) bool, True = valid frame; padded frames are never attended to.
        ``lens`` (B,): the valid frames ``pad_mask`` was made from, if known (lets the
        ``triton`` attention skip the padding without reading the mask; see nn/attention)."""
        attn = self.attn(self.attn_norm(x), pad_mask[:, None, None, :], key_lens=lens)
        x = x + self.dropout(attn)
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class TransformerDecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder output, FFN; all pre-LN."""

    FSDP_FORWARD_METHODS = ("cross_kv",)  # called besides forward (speechkit.train.distributed)

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ffn: int,
        dropout: float,
        attention_dropout: float,
        activation: Literal["gelu", "relu", "swish"] = "gelu",
    ):
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ffn, dropout, activation=activation)
        self.dropout = nn.Dropout(dropout)

    def cross_kv(self, memory: Tensor) -> KV:
        """Cross-attention keys/values of the encoder output ``memory`` (B, S, D)."""
        return self.cross_attn.project_kv(memory)

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor,
        cross: KV,
        cross_mask: Tensor,
        past: KV | None = None,
    ) -> tuple[Tensor, KV]:
        """Runs ``x`` (B, l, D), the l newest tokens, and returns (B, l, D) and the self-attn KV.

        ``past``: keys/values of the earlier tokens (B, H, t, Dh), or None at the start.
        ``self_mask``: (l, t + l) bool causal mask. ``cross``: (U, H, S, Dh) each, and
        ``cross_mask`` (U, 1, 1, S) bool, for U encoder rows with B a multiple of U: rows
        ``[j * B // U, (j + 1) * B // U)`` of ``x`` attend over encoder row j (beams of one
        utterance; see ``DecoderCache``).
        The returned KV covers all t + l tokens, ready to be the next call's ``past``.
        """
        h = self.self_norm(x)
        k, v = self.self_attn.project_kv(h)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        x = x + self.dropout(self.self_attn.attend(h, k, v, self_mask))
        h = self.cross_norm(x)
        rows, length, dim = h.shape
        group = rows // cross[0].shape[0]
        if group * cross[0].shape[0] != rows:
            raise ValueError(f"{rows} decoder rows cannot share {cross[0].shape[0]} encoder rows")
        # No mask between cross-attention queries: the `group` rows that share an encoder row
        # attend as one query sequence, so its K/V are read once, not once per beam.
        h = h.reshape(rows // group, group * length, dim)
        out = self.cross_attn.attend(h, cross[0], cross[1], cross_mask)
        x = x + self.dropout(out.reshape(rows, length, dim))
        x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        return x, (k, v)
