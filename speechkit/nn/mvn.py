"""Global mean/variance normalisation of feature frames with fixed (corpus) statistics.

ESPnet models normalise log-mel frames with statistics gathered over their training set
(``feats_stats.npz``) before the encoder. Here the statistics are buffers of the model, so they
travel with its weights and a fine-tuned model keeps them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speechkit.nn.masks import lengths_to_mask

__all__ = ["GlobalMVN"]


class GlobalMVN(nn.Module):
    """``(x - mean) / std`` per feature bin; padded frames come out as zeros.

    ``mean`` and ``std`` are (F,) buffers (saved in the state dict); they start as 0 and 1 (the
    identity) and are filled by a converter or :meth:`set_stats`.
    """

    def __init__(self, n_feats: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_feats))
        self.register_buffer("std", torch.ones(n_feats))

    @torch.no_grad()
    def set_stats(self, mean: Tensor, std: Tensor) -> None:
        """Copies (F,) statistics in; std must be positive."""
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(
                f"MVN stats of shape {tuple(mean.shape)}/{tuple(std.shape)} do not fit "
                f"{tuple(self.mean.shape)}"
            )
        if bool((std <= 0).any()):
            raise ValueError("MVN std must be positive")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> Tensor:
        """``feats`` (B, T, F), ``feat_lens`` (B,) valid frames -> (B, T, F)."""
        keep = lengths_to_mask(feat_lens, feats.size(1)).unsqueeze(-1)  # (B, T, 1)
        x = (feats - self.mean.to(feats.dtype)) * keep
        return x / self.std.to(feats.dtype)
