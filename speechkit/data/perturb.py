"""Speed perturbation of cuts, applied before the sampler so that batches fit their budget.

Kaldi/ESPnet speed perturbation plays a training cut ``f`` times faster (``f`` in
``data.speed_perturb``, e.g. ``[0.9, 1.0, 1.1]``): tempo and pitch (formants) change together,
and a cut of ``d`` seconds lasts ``d / f``. Done on waveforms after the sampler has chosen a
batch, it would let a batch of ``max_duration`` seconds grow to ``max_duration / min(f)``
(11 % at ``f = 0.9``), and memory planned for the budget would not hold. So the factor is
chosen here, on the cut, with lhotse's ``Cut.perturb_speed``: the cut's duration (and its
supervisions' times) become the perturbed ones, which the sampler then budgets, and the audio is
resampled lazily when the dataset loads it (lhotse's ``Speed`` transform, a torchaudio
resampler; no sox).

The factor of a cut is a pure function of ``(seed, epoch, cut id)`` (a hash, not an RNG stream),
so every rank of a distributed run and every replay of a resumed epoch sees the same perturbed
durations, whatever order the cuts are read in, and each epoch draws new factors. Cut ids are
kept, so logs and ``batch["cut_ids"]`` still name manifest cuts.

Usage (``build_data_sampler`` in ``dataset.py`` does this)::

    perturbation = SpeedPerturbation([0.9, 1.0, 1.1], seed=0)
    sampler = build_sampler(perturbation.apply(cuts), ...)
    perturbation.follow(sampler)    # factors of the sampler's current epoch
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

from lhotse import CutSet

__all__ = ["SpeedPerturbation"]


class SpeedPerturbation:
    """Per-cut speed factors drawn uniformly from ``factors``, keyed by seed, epoch and cut id.

    ``factors``: speed factors (1.1 = 10 % faster, shorter); ``seed``: the run's seed.
    The epoch is read from the sampler given to :meth:`follow` each time the cuts are
    iterated (0 before that).
    """

    def __init__(self, factors: Sequence[float], seed: int = 0) -> None:
        if not factors or any(f <= 0 for f in factors):
            raise ValueError(f"speed factors must be positive and non-empty, got {factors}")
        self.factors = tuple(float(f) for f in factors)
        self.seed = seed
        self._sampler = None

    @property
    def epoch(self) -> int:
        return int(getattr(self._sampler, "epoch", 0))

    def follow(self, sampler) -> None:
        """Draw factors for ``sampler.epoch`` (a lhotse sampler sets it in ``set_epoch`` and
        ``load_state_dict``, before it iterates its cuts)."""
        self._sampler = sampler

    def factor(self, cut_id: str, epoch: int) -> float:
        """The speed factor of ``cut_id`` in ``epoch``."""
        key = f"{self.seed}:{epoch}:{cut_id}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return self.factors[int.from_bytes(digest, "little") % len(self.factors)]

    def perturb(self, cut, epoch: int):
        """``cut`` played at its factor of ``epoch`` (the same cut when that is 1.0)."""
        f = self.factor(cut.id, epoch)
        if f == 1.0:
            return cut
        if cut.has_features:
            # Features are computed from the (perturbed) audio; lhotse would otherwise warn and
            # detach precomputed ones by mutating the source cut.
            cut = cut.drop_features()
        return cut.perturb_speed(f, affix_id=False)

    def _iterate(self, cuts: Iterable) -> Iterator:
        epoch = self.epoch  # fixed for the whole pass, even if set_epoch runs meanwhile
        for cut in cuts:
            yield self.perturb(cut, epoch)

    def apply(self, cuts: CutSet) -> CutSet:
        """A lazy view of ``cuts`` that perturbs each cut as it is read."""
        return CutSet(_Perturbed(self, cuts))


class _Perturbed:
    """A re-iterable view (each iteration re-reads the source with the current epoch)."""

    def __init__(self, perturbation: SpeedPerturbation, cuts: Iterable) -> None:
        self.perturbation, self.cuts = perturbation, cuts

    def __iter__(self) -> Iterator:
        return self.perturbation._iterate(self.cuts)
