"""E-Branchformer encoder layer (Kim et al., SLT 2022), as used by the OWSM v3.1 encoders.

One layer, on x (B, T, D)::

    x = x + 1/2 FFN1(LN(x))                    # macaron half-step feed-forward
    g = MHSA(LN(x))                            # global branch
    l = cgMLP(LN(x))                           # local branch (convolutional gating MLP)
    c = concat(g, l)                           # (B, T, 2D)
    x = x + Linear(c + DepthwiseConv(c))       # merge
    x = x + 1/2 FFN2(LN(x))
    x = LN(x)

The cgMLP: Linear D->U, GELU, then a convolutional spatial gating unit (CSGU) that splits the
U channels into halves (a, b) and returns ``a * DepthwiseConv(LN(b))``, then Linear U/2->D.

Padding: depthwise convolutions mix neighbouring frames, so padded frames are zeroed before
each convolution. A padded batch then gives the same valid outputs as each utterance alone.

Gates (``nn/gates.py``): FFN1, MHSA, cgMLP and FFN2 can be switched off per utterance. With one
branch off, the merge runs on the other half of its channels only (the off half is zeros, whose
merge convolution gives its bias, folded into the projection's bias); with both off the merge
is skipped and x passes unchanged. ``drop`` builds the layer without some of these modules
(a pruned model): a dropped module is always off. FFN1 and FFN2 can also be gated per channel
group (``GatedLayer.group_ffn_gates``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.nn.attention import MultiHeadAttention
from speechkit.nn.depthwise import depthwise_conv1d
from speechkit.nn.feedforward import FeedForward
from speechkit.nn.gates import Gate, GatedLayer, Gates, run_by_pattern, scaled

__all__ = ["ConvolutionalGatingMLP", "EBranchformerLayer"]


def _zero_padding(x: Tensor, pad_mask: Tensor) -> Tensor:
    """Zeros frames of ``x`` (B, T, C) where ``pad_mask`` (B, T) is False."""
    return x * pad_mask.unsqueeze(-1).to(x.dtype)


class _DepthwiseConv(nn.Module):
    """Per-channel 1-D convolution over time with 'same' padding. (B, T, C) -> (B, T, C)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        # The Conv1d module only holds the parameters (and their names, which the ESPnet
        # converter maps); speechkit.nn.depthwise computes it time-major, fast on CPU.
        return depthwise_conv1d(_zero_padding(x, pad_mask), self.conv.weight, self.conv.bias)


class ConvolutionalGatingMLP(nn.Module):
    """cgMLP branch: (B, T, D) -> (B, T, D) through ``units`` hidden channels (even)."""

    def __init__(self, d_model: int, units: int, kernel: int, dropout: float):
        super().__init__()
        if units % 2 != 0:
            raise ValueError(f"cgMLP units must be even (split in two halves), got {units}")
        self.proj_in = nn.Sequential(nn.Linear(d_model, units), nn.GELU())
        self.gate_norm = nn.LayerNorm(units // 2)
        self.gate_conv = _DepthwiseConv(units // 2, kernel)
        self.dropout = nn.Dropout(dropout)
        self.proj_out = nn.Linear(units // 2, d_model)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        """``pad_mask`` (B, T) bool, True = valid frame."""
        a, b = self.proj_in(x).chunk(2, dim=-1)  # (B, T, U/2) each
        gate = self.gate_conv(self.gate_norm(b), pad_mask)
        return self.proj_out(self.dropout(a * gate))


class EBranchformerLayer(GatedLayer):
    """One E-Branchformer layer; see the module docstring. (B, T, D) -> (B, T, D).
    ``ffn_widths``: the hidden width of FFN modules narrower than ``d_ffn`` (a pruned model)."""

    GATED = ("ffn1", "attn", "cgmlp", "ffn2")  # gate order (nn/gates.py)
    FFNS = ("ffn1", "ffn2")  # may be gated per channel group

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ffn: int,
        cgmlp_units: int,
        cgmlp_kernel: int,
        merge_kernel: int,
        dropout: float,
        attention_dropout: float,
        drop: Collection[str] = (),
        ffn_widths: Mapping[str, int] | None = None,
    ):
        super().__init__()
        widths = {name: d_ffn for name in self.FFNS} | dict(ffn_widths or {})
        unknown = set(drop) - set(self.GATED)
        if unknown:
            raise ValueError(f"cannot drop {sorted(unknown)}; gated modules: {self.GATED}")
        keep = lambda name, make: None if name in drop else make()  # noqa: E731
        self.ffn1_norm = keep("ffn1", lambda: nn.LayerNorm(d_model))
        swish = lambda name: FeedForward(d_model, widths[name], dropout, "swish")  # noqa: E731
        self.ffn1 = keep("ffn1", lambda: swish("ffn1"))
        self.attn_norm = keep("attn", lambda: nn.LayerNorm(d_model))
        self.attn = keep("attn", lambda: MultiHeadAttention(d_model, n_heads, attention_dropout))
        self.cgmlp_norm = keep("cgmlp", lambda: nn.LayerNorm(d_model))
        self.cgmlp = keep(
            "cgmlp", lambda: ConvolutionalGatingMLP(d_model, cgmlp_units, cgmlp_kernel, dropout)
        )
        merge = not {"attn", "cgmlp"} <= set(drop)
        self.merge_conv = _DepthwiseConv(2 * d_model, merge_kernel) if merge else None
        self.merge_proj = nn.Linear(2 * d_model, d_model) if merge else None
        self.ffn2_norm = keep("ffn2", lambda: nn.LayerNorm(d_model))
        self.ffn2 = keep("ffn2", lambda: swish("ffn2"))
        self.final_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, pad_mask: Tensor, lens: Tensor | None = None, gates: Gates = None
    ) -> Tensor:
        """``pad_mask`` (B, T) bool, True = valid frame; ``lens`` (B,) the valid frames it was
        made from, if known (lets the ``triton`` attention skip the padding; see nn/attention).
        ``gates``: see ``nn/gates.py`` (order ``gate_names``)."""
        if isinstance(gates, Tensor) and gates.dtype == torch.bool:
            return run_by_pattern(self.forward, x, gates, (pad_mask, lens))
        (g_ffn1, groups1), (g_attn, _), (g_cgmlp, _), (g_ffn2, groups2) = (
            self.gate(gates, name) for name in self.GATED
        )
        if g_ffn1 is not False:
            x = x + scaled(0.5 * self.dropout(self.ffn1(self.ffn1_norm(x), groups1)), g_ffn1)
        x = self._branches(x, pad_mask, lens, g_attn, g_cgmlp)
        if g_ffn2 is not False:
            x = x + scaled(0.5 * self.dropout(self.ffn2(self.ffn2_norm(x), groups2)), g_ffn2)
        return self.final_norm(x)

    def _branches(
        self, x: Tensor, pad_mask: Tensor, lens: Tensor | None, g_attn: Gate, g_cgmlp: Gate
    ) -> Tensor:
        """x + merge(global, local), running only the branches that are on."""
        if g_attn is False and g_cgmlp is False:
            return x
        halves = []
        if g_attn is not False:
            attn = self.attn(self.attn_norm(x), pad_mask[:, None, None, :], key_lens=lens)
            halves.append(scaled(self.dropout(attn), g_attn))
        if g_cgmlp is not False:
            local = self.cgmlp(self.cgmlp_norm(x), pad_mask)
            halves.append(scaled(self.dropout(local), g_cgmlp))
        if len(halves) == 2:
            both = torch.cat(halves, dim=-1)  # (B, T, 2D)
            both = both + self.merge_conv(both, pad_mask)
            merged = self.merge_proj(both)
        else:
            merged = self._half_merge(halves[0], pad_mask, on=0 if g_attn is not False else 1)
        if isinstance(g_attn, Tensor) or isinstance(g_cgmlp, Tensor):
            # Relaxed gates: the merge counts as run unless both branches are off.
            off_a = 1 - g_attn if isinstance(g_attn, Tensor) else float(g_attn is False)
            off_c = 1 - g_cgmlp if isinstance(g_cgmlp, Tensor) else float(g_cgmlp is False)
            merged = scaled(merged, 1 - off_a * off_c)
        return x + self.dropout(merged)

    def _half_merge(self, half: Tensor, pad_mask: Tensor, on: int) -> Tensor:
        """The merge of (B, T, D) ``half`` (channel half ``on``: 0 global, 1 local) with the
        other half all zeros: its convolution gives the conv bias, a constant of the output."""
        d = half.shape[-1]
        here, other = slice(on * d, (on + 1) * d), slice((1 - on) * d, (2 - on) * d)
        conv, proj = self.merge_conv.conv, self.merge_proj
        bias_here = None if conv.bias is None else conv.bias[here]
        half = half + depthwise_conv1d(_zero_padding(half, pad_mask), conv.weight[here], bias_here)
        bias = proj.bias
        if conv.bias is not None:
            bias = bias + proj.weight[:, other] @ conv.bias[other]
        return F.linear(half, proj.weight[:, here], bias)
