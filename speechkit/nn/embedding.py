"""Positional encodings.

The encoder uses fixed absolute sinusoidal positions (the ``abs_pos`` setting that the OWSM v3.1
E-Branchformer configs use); the decoder learns its positions, like Whisper (see ``models/s2t``).
Relative positions (``rel_pos``) are not implemented.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinusoidalPositionalEncoding", "sinusoidal_positions"]


def sinusoidal_positions(length: int, dim: int, max_timescale: float = 10000.0) -> Tensor:
    """(length, dim) float32 table: even channels sin, odd channels cos of ``pos / timescale``.

    Timescales are geometric from 1 to ``max_timescale``; ``dim`` must be even.
    """
    if dim % 2 != 0:
        raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    inv_timescale = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(max_timescale) / dim)
    )  # (dim/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * inv_timescale)
    table[:, 1::2] = torch.cos(pos * inv_timescale)
    return table


class SinusoidalPositionalEncoding(nn.Module):
    """Adds sinusoidal positions to ``x`` (B, T, D) scaled by sqrt(D), then dropout.

    The sqrt(D) scale keeps the input comparable in size to the unit-amplitude positions. The
    table grows on demand, so any input length works.
    """

    def __init__(
        self, dim: int, dropout: float = 0.0, initial_length: int = 1500, scale: bool = True
    ):
        super().__init__()
        self.dim = dim
        self.scale = math.sqrt(dim) if scale else 1.0
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("table", sinusoidal_positions(initial_length, dim), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        t = x.size(1)
        if t > self.table.size(0):
            self.table = sinusoidal_positions(t, self.dim).to(self.table.device)
        return self.dropout(x * self.scale + self.table[:t].to(x.dtype))
