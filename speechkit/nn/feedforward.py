"""Position-wise feed-forward block: Linear -> activation -> dropout -> Linear.

Channel groups (``nn/gates.py``): the F hidden channels split into G equal groups of F / G
consecutive channels, and each group can be switched off. With a tuple of G bools only the on
groups are computed: each run of consecutive on groups is one smaller pair of matrix products
(rows of the first layer's weight, columns of the second's), and their outputs are summed; the
off groups' weights are never read. With relaxed (B, G) gates (training) every channel is
computed and each group's hidden channels are scaled by its gate per row.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.nn.linear import linear

__all__ = ["FeedForward"]

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU}


class FeedForward(nn.Module):
    """(B, T, D) -> (B, T, D) through a hidden width ``d_ffn``."""

    def __init__(
        self,
        d_model: int,
        d_ffn: int,
        dropout: float = 0.0,
        activation: Literal["gelu", "relu", "swish"] = "gelu",
    ):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ffn),
            _ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(d_ffn, d_model),
        )

    def forward(self, x: Tensor, groups: tuple[bool, ...] | Tensor | None = None) -> Tensor:
        """``groups``: None (every channel), a tuple of G bools (only the on groups are
        computed; none on gives zeros) or relaxed float gates (B, G); see the module
        docstring. G must divide ``d_ffn``."""
        first, act, drop, second = self.net
        if groups is None:
            return linear(second, drop(act(linear(first, x))))
        n = len(groups) if isinstance(groups, tuple) else groups.shape[-1]
        width = first.out_features // n
        if width * n != first.out_features:
            raise ValueError(f"{n} channel groups do not divide the FFN width {first.out_features}")
        if isinstance(groups, Tensor):
            h = drop(act(first(x)))  # (B, T, F)
            g = groups.to(h.dtype).repeat_interleave(width, dim=-1)  # (B, F)
            # The output bias is part of the module: it runs unless every group is off.
            any_on = 1 - (1 - groups.to(h.dtype)).prod(-1)  # (B,)
            return F.linear(h * g[:, None, :], second.weight) + second.bias * any_on[:, None, None]
        out = None
        for start, stop in _runs(groups):
            rows = slice(start * width, stop * width)
            h = drop(act(F.linear(x, first.weight[rows], first.bias[rows])))  # (B, T, F_run)
            y = F.linear(h, second.weight[:, rows])
            out = y if out is None else out + y
        return x.new_zeros(x.shape) if out is None else out + second.bias


def _runs(on: tuple[bool, ...]) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive True entries of ``on``."""
    runs, start = [], None
    for i, flag in enumerate((*on, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs
