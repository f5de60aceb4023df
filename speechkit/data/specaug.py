"""SpecAugment: frequency masks, time masks and optional time warping on log-mel features.

Applied per utterance on its valid frames only, so padding stays zero and short utterances are
not masked by amounts computed for long ones. Time masks are ratio based: each mask is at most
``time_mask_max_ratio * T`` frames wide, and the number of masks adapts to the length
(``ceil(num_time_masks * T / 1000)``, i.e. ``num_time_masks`` per 10 s of 10 ms frames, at least 1).
Masked values are set to the utterance mean, which is 0 for normalised features.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from speechkit.config import ConfigError

__all__ = ["SpecAugConfig", "SpecAugment"]


@dataclasses.dataclass
class SpecAugConfig:
    """SpecAugment settings; widths are in mel bins / frames, ratios are fractions of T.

    enabled: apply at all (training only; the dataset never augments evaluation batches).
    num_freq_masks / freq_mask_width: masks along the mel axis, widths uniform in [0, width]
        (clipped to the number of mel bins).
    num_time_masks: masks per 1000 frames (10 s), at least one per utterance.
    time_mask_max_ratio: maximum width of one time mask as a fraction of the utterance frames.
    time_warp / time_warp_window: warp the time axis around a random centre by up to W frames.
    """

    enabled: bool = True
    num_freq_masks: int = 2
    freq_mask_width: int = 27
    num_time_masks: int = 10
    time_mask_max_ratio: float = 0.05
    time_warp: bool = False
    time_warp_window: int = 5

    def __post_init__(self) -> None:
        if self.num_freq_masks < 0 or self.freq_mask_width < 0 or self.num_time_masks < 0:
            raise ConfigError("specaug: mask counts and widths must be >= 0")
        if not 0.0 <= self.time_mask_max_ratio <= 1.0:
            raise ConfigError(
                f"specaug.time_mask_max_ratio must be in [0, 1], got {self.time_mask_max_ratio}"
            )
        if self.time_warp_window < 0:
            raise ConfigError("specaug.time_warp_window must be >= 0")


class SpecAugment(nn.Module):
    """``forward(feats (B, T, F), feat_lens (B,)) -> feats (B, T, F)`` (a new tensor).

    Randomness comes from ``torch``'s global generator unless a ``generator`` is passed.
    """

    def __init__(self, cfg: SpecAugConfig):
        super().__init__()
        self.cfg = cfg

    def forward(
        self,
        feats: torch.Tensor,
        feat_lens: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if not self.cfg.enabled:
            return feats
        out = feats.clone()
        for i, n in enumerate(feat_lens.tolist()):
            if n > 0:
                out[i, :n] = self._one(out[i, :n], generator)
        return out

    def _randint(self, high: int, gen: torch.Generator | None) -> int:
        """Uniform integer in [0, high] (inclusive)."""
        return int(torch.randint(0, max(high, 0) + 1, (1,), generator=gen))

    def _one(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """One utterance's valid frames (T, F) -> augmented (T, F)."""
        t, f = x.shape
        if self.cfg.time_warp and t > 2 * self.cfg.time_warp_window + 1:
            x = self._warp(x, gen)
        fill = x.mean()
        width = min(self.cfg.freq_mask_width, f)
        for _ in range(self.cfg.num_freq_masks):
            w = self._randint(width, gen)
            start = self._randint(f - w, gen)
            x[:, start : start + w] = fill
        max_w = int(self.cfg.time_mask_max_ratio * t)
        if self.cfg.num_time_masks > 0 and max_w > 0:
            for _ in range(max(1, math.ceil(self.cfg.num_time_masks * t / 1000))):
                w = self._randint(max_w, gen)
                start = self._randint(t - w, gen)
                x[start : start + w, :] = fill
        return x

    def _warp(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Moves a random centre frame by up to ``time_warp_window`` frames (linear resampling)."""
        t = x.shape[0]
        win = self.cfg.time_warp_window
        centre = win + self._randint(t - 2 * win - 1, gen)
        shift = self._randint(2 * win, gen) - win
        new_centre = centre + shift
        left = torch.nn.functional.interpolate(
            x[:centre].T[None], size=new_centre, mode="linear", align_corners=False
        )[0].T
        right = torch.nn.functional.interpolate(
            x[centre:].T[None], size=t - new_centre, mode="linear", align_corners=False
        )[0].T
        return torch.cat([left, right], dim=0)
