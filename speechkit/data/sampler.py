"""Batch membership: which cuts go together, decided by a checkpointable lhotse sampler.

``build_sampler`` returns a ``DynamicBucketingSampler`` (cuts of similar duration share a batch,
so little compute is wasted on padding) or, with ``bucketing: false``, a ``DynamicCutSampler``
(shuffled, same duration budget, no length grouping). Both yield ``CutSet`` batches whose total
duration stays under ``max_duration`` seconds, and both support ``state_dict()`` /
``load_state_dict()`` so a resumed run continues mid-epoch with the same remaining batches.

``PaddingMeter`` measures the padding waste of the batches an epoch produced:
``sum_b(max_dur_b * n_b - sum(durs_b)) / sum_b(max_dur_b * n_b)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import warnings
from collections.abc import Sequence

from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler

from speechkit.config import ConfigError

__all__ = ["PaddingMeter", "SamplerConfig", "build_sampler", "padding_fraction"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SamplerConfig:
    """Sampler settings; durations in seconds.

    max_duration: total audio per batch (before padding).
    num_buckets: duration buckets for bucketing.
    quadratic_duration: if set, a cut of d seconds counts as ``d + d**2 / quadratic_duration``
        (penalises long cuts, whose attention cost is quadratic).
    bucketing: group cuts of similar duration; False = one shuffled stream.
    shuffle / drop_last: as in lhotse.
    max_cut_duration: cuts longer than this are dropped before sampling (with a logged count).
    buffer_size: cuts held in memory for bucketing / shuffling.
    """

    max_duration: float = 100.0
    num_buckets: int = 10
    quadratic_duration: float | None = None
    bucketing: bool = True
    shuffle: bool = True
    drop_last: bool = False
    max_cut_duration: float = 30.0
    buffer_size: int = 10000

    def __post_init__(self) -> None:
        if self.max_duration <= 0 or self.max_cut_duration <= 0:
            raise ConfigError("sampler: max_duration and max_cut_duration must be > 0 seconds")
        if self.max_cut_duration > self.max_duration:
            raise ConfigError(
                f"sampler.max_cut_duration ({self.max_cut_duration}) exceeds max_duration "
                f"({self.max_duration}): such a cut could never fit in a batch"
            )
        if self.num_buckets < 1 or self.buffer_size < 1:
            raise ConfigError("sampler: num_buckets and buffer_size must be >= 1")
        if self.quadratic_duration is not None and self.quadratic_duration <= 0:
            raise ConfigError("sampler.quadratic_duration must be > 0 seconds or null")


class _MaxDuration:
    """Filter predicate that counts (and periodically logs) the distinct cuts it drops.

    Distinct ids, because a lazy CutSet is read more than once (bucket estimation, each epoch).
    """

    def __init__(self, max_duration: float, verbose: bool = True):
        self.max_duration = max_duration
        self.verbose = verbose
        self._dropped_ids: set[str] = set()

    @property
    def dropped(self) -> int:
        return len(self._dropped_ids)

    def __call__(self, cut) -> bool:
        if cut.duration <= self.max_duration:
            return True
        if cut.id in self._dropped_ids:
            return False
        self._dropped_ids.add(cut.id)
        n = self.dropped
        if self.verbose and n & (n - 1) == 0:  # log at 1, 2, 4, 8, ...: visible, not spammy
            logger.warning(
                "dropped %d cut(s) longer than max_cut_duration=%.1f s so far (latest: %s, %.1f s)",
                n,
                self.max_duration,
                cut.id,
                cut.duration,
            )
        return False


def build_sampler(
    cuts: CutSet, cfg: SamplerConfig, seed: int = 0, world_size: int = 1, rank: int = 0
) -> DynamicBucketingSampler | DynamicCutSampler:
    """A checkpointable sampler over ``cuts`` (see module docstring).

    The long-cut filter is available as ``sampler.long_cut_filter`` (``.dropped`` = count).
    For an eager CutSet the count is known (and logged) up front.
    """
    keep = _MaxDuration(cfg.max_cut_duration, verbose=cuts.is_lazy)
    if cuts.is_lazy:
        cuts = cuts.filter(keep)
    else:
        cuts = CutSet.from_cuts(c for c in cuts if keep(c))
        if keep.dropped:
            logger.warning(
                "dropped %d of %d cuts longer than max_cut_duration=%.1f s",
                keep.dropped,
                keep.dropped + len(cuts),
                cfg.max_cut_duration,
            )
    common = {
        "max_duration": cfg.max_duration,
        "shuffle": cfg.shuffle,
        "drop_last": cfg.drop_last,
        "quadratic_duration": cfg.quadratic_duration,
        "world_size": world_size,
        "rank": rank,
        "seed": seed,
    }
    with warnings.catch_warnings():
        # lhotse warns about eager CutSets; small corpora and tests are legitimately eager.
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        sampler = _make(cuts, cfg, common)
    sampler.long_cut_filter = keep
    return sampler


def _make(cuts: CutSet, cfg: SamplerConfig, common: dict):
    if cfg.bucketing:
        # lhotse needs a cut per bucket; a tiny (e.g. dev) set gets fewer buckets. Counting
        # only up to num_buckets keeps this cheap for large lazy manifests.
        available = sum(1 for _ in itertools.islice(cuts, cfg.num_buckets))
        num_buckets = max(1, min(cfg.num_buckets, available))
        if num_buckets < cfg.num_buckets:
            logger.info("only %d cuts: using %d duration buckets", available, num_buckets)
        return DynamicBucketingSampler(
            cuts,
            num_buckets=num_buckets,
            buffer_size=cfg.buffer_size,
            num_cuts_for_bins_estimate=min(cfg.buffer_size, 10000),
            **common,
        )
    return DynamicCutSampler(cuts, shuffle_buffer_size=cfg.buffer_size, **common)


def padding_fraction(batch_durations: Sequence[float]) -> float:
    """Fraction of a padded batch that is padding: ``1 - sum(d) / (max(d) * n)``."""
    if not batch_durations:
        return 0.0
    total = max(batch_durations) * len(batch_durations)
    return 1.0 - sum(batch_durations) / total if total > 0 else 0.0


class PaddingMeter:
    """Accumulates padding waste over the batches of an epoch.

    Call ``update(cuts)`` once per batch (a CutSet or list of cuts, or of durations in seconds),
    read ``value`` at the end of the epoch, then ``reset()``.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.padded_seconds = 0.0  # sum over batches of max_dur * n
        self.real_seconds = 0.0  # sum over batches of sum(durs)
        self.num_batches = 0

    def update(self, batch) -> None:
        durs = [float(c) if isinstance(c, (int, float)) else c.duration for c in batch]
        if not durs:
            return
        self.padded_seconds += max(durs) * len(durs)
        self.real_seconds += sum(durs)
        self.num_batches += 1

    @property
    def value(self) -> float:
        """Padding fraction in [0, 1) over all batches seen since the last reset."""
        if self.padded_seconds <= 0:
            return 0.0
        return (self.padded_seconds - self.real_seconds) / self.padded_seconds
