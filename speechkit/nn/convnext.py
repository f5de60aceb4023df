"""The ConvNeXt block of the frame-rate networks (the vocoder, the spectral codec's encoder).

Shapes: (B, C, T) channels-first, T frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvNeXtBlock"]


class ConvNeXtBlock(nn.Module):
    """(B, C, T) -> (B, C, T): depthwise conv, LayerNorm over channels, pointwise expansion with
    GELU, projection back, per-channel layer scale, residual. No downsampling: the time axis is
    the frame axis throughout."""

    def __init__(self, dim: int, ffn_mult: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, ffn_mult * dim)
        self.pw2 = nn.Linear(ffn_mult * dim, dim)
        # Small initial residual branches keep a deep stack close to identity at the start.
        self.scale = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.scale * h).transpose(1, 2)
