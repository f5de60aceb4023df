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
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speechkit.nn.attention import MultiHeadAttention
from speechkit.nn.depthwise import depthwise_conv1d
from speechkit.nn.feedforward import FeedForward

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


class EBranchformerLayer(nn.Module):
    """One E-Branchformer layer; see the module docstring. (B, T, D) -> (B, T, D)."""

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
    ):
        super().__init__()
        self.ffn1_norm = nn.LayerNorm(d_model)
        self.ffn1 = FeedForward(d_model, d_ffn, dropout, activation="swish")
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.cgmlp_norm = nn.LayerNorm(d_model)
        self.cgmlp = ConvolutionalGatingMLP(d_model, cgmlp_units, cgmlp_kernel, dropout)
        self.merge_conv = _DepthwiseConv(2 * d_model, merge_kernel)
        self.merge_proj = nn.Linear(2 * d_model, d_model)
        self.ffn2_norm = nn.LayerNorm(d_model)
        self.ffn2 = FeedForward(d_model, d_ffn, dropout, activation="swish")
        self.final_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad_mask: Tensor, lens: Tensor | None = None) -> Tensor:
        """``pad_mask`` (B, T) bool, True = valid frame; ``lens`` (B,) the valid frames it was
        made from, if known (lets the ``triton`` attention skip the padding; see nn/attention)."""
        x = x + 0.5 * self.dropout(self.ffn1(self.ffn1_norm(x)))
        attn = self.attn(self.attn_norm(x), pad_mask[:, None, None, :], key_lens=lens)
        global_branch = self.dropout(attn)
        local_branch = self.dropout(self.cgmlp(self.cgmlp_norm(x), pad_mask))
        both = torch.cat([global_branch, local_branch], dim=-1)  # (B, T, 2D)
        both = both + self.merge_conv(both, pad_mask)
        x = x + self.dropout(self.merge_proj(both))
        x = x + 0.5 * self.dropout(self.ffn2(self.ffn2_norm(x)))
        return self.final_norm(x)
