"""Batch membership: which cuts go together, decided by a checkpointable lhotse sampler.

``build_sampler`` returns a ``DynamicBucketingSampler`` (cuts of similar duration share a batch,
so little compute is wasted on padding) or, with ``bucketing: false``, a ``DynamicCutSampler``
(shuffled, same duration budget, no length grouping). Both yield ``CutSet`` batches whose total
duration stays under ``max_duration`` seconds, and both support ``state_dict()`` /
``load_state_dict()`` so a resumed run continues mid-epoch with the same remaining batches.

With ``buckets: <file>`` (a :class:`~speechkit.data.buckets.BucketGrid` YAML from
``speechkit.bin.estimate_buckets``, optionally with per-bucket batch sizes from
``speechkit.train.batch_search``) the buckets are 2D, over duration and output tokens.

Distributed: every rank builds the sampler with its ``world_size`` and ``rank``; lhotse draws
``world_size`` batches per step from one bucket (the same on all ranks, as the bucket choice
uses a rank-independent RNG) and gives rank ``r`` the ``r``-th, so ranks stay in step. The
state records how many batches the epoch has used over all ranks, so a run resumed with a
different number of processes skips exactly those and goes on (re-sharded).

Per-rank streams (Shar shards dealt to the ranks, ``shar.py``): each rank samples its own cuts
with a world size of 1, and ``stream_group`` (the number of ranks) makes them end every epoch
together, when the first rank's stream runs out (one all-reduce of a flag per batch).

``PaddingMeter`` measures the padding waste of the batches an epoch produced:
``sum_b(max_dur_b * n_b - sum(durs_b)) / sum_b(max_dur_b * n_b)``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import warnings
from collections.abc import Sequence

import torch
import torch.distributed as dist
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler
from lhotse.dataset.sampling.base import EpochDiagnostics

from speechkit.config import ConfigError
from speechkit.data.buckets import Bucket2DConstraint, BucketGrid, TokenCounter
from speechkit.text.sentencepiece import SentencePieceTokenizer

__all__ = [
    "BucketingSampler",
    "PaddingMeter",
    "ShuffledSampler",
    "SamplerConfig",
    "build_sampler",
    "fixed_count_loader",
    "padding_fraction",
]

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
    buckets: path of a 2D bucket YAML (duration x output tokens; see ``data/buckets.py``);
        when set, ``bucketing`` must be true and ``num_buckets`` / ``quadratic_duration`` are
        unused; batch sizes come from the file, else from ``max_duration``.
    shuffle_shards: training from Shar shards (``shar.py``), read them in a new order each
        epoch (a hash of seed and epoch); False keeps the order of the export.
    """

    max_duration: float = 100.0
    num_buckets: int = 10
    quadratic_duration: float | None = None
    bucketing: bool = True
    shuffle: bool = True
    drop_last: bool = False
    max_cut_duration: float = 30.0
    buffer_size: int = 10000
    buckets: str | None = None
    shuffle_shards: bool = True

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
        if self.buckets is not None and not self.bucketing:
            raise ConfigError(
                "sampler.buckets (a 2D bucket file) needs sampler.bucketing: true; "
                "set bucketing: true or buckets: null"
            )


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


class _ElasticResume:
    """Mixin for lhotse samplers: resumable under a different ``world_size``.

    It counts the raw batches the epoch has drawn over all ranks and the world size the epoch's
    batch stream was started with (lhotse's bucket choice depends on it). ``load_state_dict``
    replays that stream and skips those batches, exactly as lhotse does for an unchanged world
    size; the rest of the epoch is then dealt out over the new number of ranks, so every cut is
    still used once. (Until the epoch ends, a step's ranks may straddle two buckets.)
    """

    _global_batches = 0
    _stream_world_size: int | None = None
    _restore: tuple[int | None, int | None] = (None, None)
    stream_group = 1  # ranks sampling per-rank streams in step (1: one shared stream)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._global_batches = 0
        super().set_epoch(epoch)

    def __iter__(self):
        if not self._just_restored_state:
            self._global_batches = 0
            self._stream_world_size = self.world_size
        return super().__iter__()

    def __next__(self):
        if self.stream_group == 1:
            batch = super().__next__()
        else:  # every rank asks, so that all ranks stop at the same batch
            try:
                batch = super().__next__()
            except StopIteration:
                batch = None
            if _any_rank(batch is None):
                raise StopIteration
        self._global_batches += self.world_size
        return batch

    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["global_batches"] = self._global_batches
        sd["stream_world_size"] = self._stream_world_size or self.world_size
        sd["stream_group"] = self.stream_group
        return sd

    def load_state_dict(self, sd: dict) -> None:
        sd = dict(sd)
        group = sd.pop("stream_group", 1)
        if group != self.stream_group:
            # Per-rank streams were dealt to another number of ranks: positions do not carry.
            logger.warning(
                "resuming per-rank streams of %d ranks on %d: epoch %s starts over",
                group,
                self.stream_group,
                sd.get("epoch"),
            )
            sd["global_batches"] = 0
        saved = sd.get("world_size", self.world_size)
        if saved != self.world_size:
            logger.warning(
                "resuming a sampler saved with world_size=%d under world_size=%d: skipping the "
                "%s batches the epoch has drawn so far, then dealing the rest out to %d ranks",
                saved,
                self.world_size,
                sd.get("global_batches", "?"),
                self.world_size,
            )
            sd["world_size"] = self.world_size
        # (Checkpoints from before these keys existed fall back to lhotse's per-rank count.)
        self._restore = (sd.pop("global_batches", None), sd.pop("stream_world_size", None))
        super().load_state_dict(sd)  # restores lhotse's fields, then calls our _fast_forward

    def _fast_forward(self) -> None:
        n, stream_ws = self._restore
        self._restore = (None, None)
        if n is None:
            n = self.diagnostics.current_epoch_stats.total_batches * self.world_size
        epoch = self.diagnostics.current_epoch
        self.set_epoch(epoch)
        self.diagnostics.stats_per_epoch[epoch] = EpochDiagnostics(epoch=epoch)
        self._just_restored_state = False
        world_size, self.world_size = self.world_size, stream_ws or self.world_size
        try:
            iter(self)  # the bucketer takes the stream's world size from here
            for _ in range(n):  # raw batches, as all ranks together drew them
                try:
                    self._next_batch()
                except StopIteration:
                    break
        finally:
            self.world_size = world_size
        self._global_batches = n
        self._just_restored_state = True


class BucketingSampler(_ElasticResume, DynamicBucketingSampler):
    """lhotse's ``DynamicBucketingSampler``, checkpointable with a custom (2D) constraint and
    resumable under a different world size."""

    def state_dict(self) -> dict:
        # lhotse refuses state_dict() with a custom constraint because it cannot rebuild one;
        # ours is rebuilt from the config, and holds no state between batches.
        constraint, self.constraint = self.constraint, None
        try:
            return super().state_dict()
        finally:
            self.constraint = constraint


class ShuffledSampler(_ElasticResume, DynamicCutSampler):
    """lhotse's ``DynamicCutSampler``, resumable under a different world size."""


def build_sampler(
    cuts: CutSet,
    cfg: SamplerConfig,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
    tokenizer: SentencePieceTokenizer | None = None,
    stream_group: int = 1,
) -> BucketingSampler | ShuffledSampler:
    """A checkpointable sampler over ``cuts`` (see module docstring).

    ``tokenizer`` counts output tokens for 2D buckets (``cfg.buckets``); without it, the
    tokenizer directory recorded in the bucket file is loaded. ``stream_group`` > 1: ``cuts``
    is this rank's own stream, one of ``stream_group`` (then ``world_size`` must be 1).
    The long-cut filter is available as ``sampler.long_cut_filter`` (``.dropped`` = count).
    For an eager CutSet the count is known (and logged) up front.
    """
    if stream_group > 1 and world_size != 1:
        raise ValueError("per-rank streams are sampled with world_size=1")
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
        "shuffle": cfg.shuffle,
        "drop_last": cfg.drop_last,
        "world_size": world_size,
        "rank": rank,
        "seed": seed,
    }
    with warnings.catch_warnings():
        # lhotse warns about eager CutSets; small corpora and tests are legitimately eager.
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        if cfg.buckets is not None:
            sampler = _make_2d(cuts, cfg, common, tokenizer)
        else:
            sampler = _make(cuts, cfg, common)
    sampler.long_cut_filter = keep
    sampler.stream_group = stream_group
    return sampler


def _make(cuts: CutSet, cfg: SamplerConfig, common: dict):
    common = {
        **common,
        "max_duration": cfg.max_duration,
        "quadratic_duration": cfg.quadratic_duration,
    }
    if cfg.bucketing:
        # lhotse needs a cut per bucket; a tiny (e.g. dev) set gets fewer buckets. Counting
        # only up to num_buckets keeps this cheap for large lazy manifests.
        available = sum(1 for _ in itertools.islice(cuts, cfg.num_buckets))
        num_buckets = max(1, min(cfg.num_buckets, available))
        if num_buckets < cfg.num_buckets:
            logger.info("only %d cuts: using %d duration buckets", available, num_buckets)
        if num_buckets >= 2:  # lhotse needs two; one bucket is plain shuffled sampling
            return BucketingSampler(
                cuts,
                num_buckets=num_buckets,
                buffer_size=cfg.buffer_size,
                num_cuts_for_bins_estimate=min(cfg.buffer_size, 10000),
                **common,
            )
    return ShuffledSampler(cuts, shuffle_buffer_size=cfg.buffer_size, **common)


def _make_2d(
    cuts: CutSet, cfg: SamplerConfig, common: dict, tokenizer: SentencePieceTokenizer | None
):
    grid = BucketGrid.load(cfg.buckets)
    if tokenizer is None:
        if not grid.tokenizer:
            raise ConfigError(
                f"{cfg.buckets}: no 'tokenizer' recorded and none given; re-run estimate_buckets"
            )
        tokenizer = SentencePieceTokenizer.load(grid.tokenizer)
    constraint = Bucket2DConstraint(grid, TokenCounter(tokenizer), max_duration=cfg.max_duration)
    logger.info(
        "2D buckets from %s: %d buckets, batch sizes %s",
        cfg.buckets,
        grid.num_buckets,
        constraint.batch_sizes,
    )
    return BucketingSampler(
        cuts,
        constraint=constraint,
        duration_bins=grid.lhotse_bins(),
        buffer_size=cfg.buffer_size,
        **common,
    )


def _any_rank(flag: bool) -> bool:
    """``flag`` OR-ed over the ranks of the default process group (``flag`` alone without one).
    (Data code does not import ``speechkit.train``; this mirrors its ``any_rank``.)"""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


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


def fixed_count_loader(
    cuts: CutSet,
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    num_workers: int,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.utils.data.DataLoader, DynamicCutSampler]:
    """``(loader, sampler)`` for datasets that take a ``CutSet`` per item (the wave, TTS and
    vocoder tasks): ``batch_size`` cuts per batch, shuffled in training, with lhotse's
    checkpointable ``DynamicCutSampler`` sharded over ``world_size`` ranks."""
    sampler = DynamicCutSampler(
        cuts, max_cuts=batch_size, shuffle=train, seed=seed, world_size=world_size, rank=rank,
        drop_last=False,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )  # fmt: skip
    return loader, sampler
