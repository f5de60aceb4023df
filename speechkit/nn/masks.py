"""Boolean masks from lengths; convention everywhere in speechkit: ``True`` = valid / keep."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["causal_mask", "lengths_to_mask"]


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``lengths`` (B,) int -> (B, max_len) bool, True for positions ``< lengths[b]``."""
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def causal_mask(n_new: int, n_past: int = 0, device: torch.device | None = None) -> Tensor:
    """(n_new, n_past + n_new) bool: new query ``i`` (absolute position ``n_past + i``) may see
    keys at absolute positions ``<= n_past + i``."""
    q_pos = torch.arange(n_new, device=device).unsqueeze(1) + n_past
    k_pos = torch.arange(n_past + n_new, device=device).unsqueeze(0)
    return k_pos <= q_pos
