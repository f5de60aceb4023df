"""Lhotse Shar: a prepared cut set as sequential tar shards, and the reader speechkit trains from.

Reading hundreds of thousands of small audio files in random order is what slows training on a
large corpus. A Shar directory (lhotse's format, written by :func:`export_shar`) holds the cuts
in shards of ``shard_size``, each a cut manifest and a tar of FLAC audio read front to back::

    cuts.000000.jsonl.gz  recording.000000.tar  cuts.000001.jsonl.gz  recording.000001.tar ...
    shar_index.json      per shard: file names, cuts, seconds of audio; written last, so it
                         marks a complete export (``speechkit.bin.export_shar`` skips one)

The export writes supervision-level cuts (``segments.split_supervisions``), each with exactly
its own audio, so a Shar directory trains like the manifest it came from.

Training reads one (``speechkit train --train-cuts DIR``: ``tasks.base.read_cuts`` turns a
directory into ``CutSet(SharCuts(...))``). :func:`speechkit.data.build_data_sampler` then binds
the source to the run (:meth:`SharCuts.for_ranks`):

* each epoch orders the shards by a hash of (seed, epoch) (``data.sampler.shuffle_shards``), then
  deals them to the ranks of a DDP run, each shard to the rank with the least audio so far; every
  rank reads only its own shards, sequentially, and samples batches from them alone (a sampler
  with world size 1). The sampler's buffer (``data.sampler.buffer_size`` cuts, with their
  compressed audio in memory: about 0.4 MB per LibriSpeech cut) shuffles within that stream.
* the ranks end each epoch together, when the first runs out (``sampler._ElasticResume``; one
  all-reduce of a flag per batch), so no rank waits in a collective that the others never join;
  the others' leftover batches (less than one shard's worth) are skipped for that epoch.
* resuming replays each rank's own stream up to the saved position, as with manifests; under a
  different number of ranks the shards are dealt differently, so the epoch starts over (logged).
* start-up cost: the bucketing sampler estimates its duration bins from the first
  ``min(buffer_size, 10000)`` cuts of the stream, which (lazily read) brings their audio in once
  more; a resumed run also reads the part of the epoch it skips.

Evaluation sets read from Shar are not split: every rank reads every shard and the sampler
deals the batches, as for a manifest.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from lhotse import CutSet
from lhotse.shar import LazySharIterator

from speechkit.checkpoint import atomic_write_text
from speechkit.config import ConfigError
from speechkit.data.segments import split_supervisions

__all__ = [
    "INDEX",
    "Shard",
    "SharCuts",
    "export_shar",
    "is_shar_dir",
    "read_index",
    "total_duration",
]

logger = logging.getLogger(__name__)

INDEX = "shar_index.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Shard:
    """One shard: its cut manifest and audio tar (absolute paths), cuts and seconds of audio."""

    cuts: str
    recording: str
    num_cuts: int
    duration: float


def is_shar_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory with a Shar index (a complete :func:`export_shar`)."""
    return (Path(path) / INDEX).is_file()


def read_index(shar_dir: str | Path) -> list[Shard]:
    """The shards of a directory written by :func:`export_shar`; a clear error otherwise."""
    shar_dir = Path(shar_dir)
    if not (shar_dir / INDEX).is_file():
        raise FileNotFoundError(
            f"{shar_dir}: no {INDEX}; not a complete Shar export "
            "(write one with python -m speechkit.bin.export_shar)"
        )
    index = json.loads((shar_dir / INDEX).read_text())
    shards = [
        Shard(
            str(shar_dir / s["cuts"]), str(shar_dir / s["recording"]), s["num_cuts"], s["duration"]
        )
        for s in index["shards"]
    ]
    missing = [p for s in shards for p in (s.cuts, s.recording) if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{shar_dir}: {len(missing)} shard files missing, e.g. {missing[0]}"
        )
    return shards


def _source_stamp(cuts_path: Path, shard_size: int) -> dict:
    stat = cuts_path.stat()
    return {
        "source": str(cuts_path.resolve()),
        "source_bytes": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "shard_size": shard_size,
        "format_version": FORMAT_VERSION,
    }


def export_shar(
    cuts_path: str | Path, out_dir: str | Path, shard_size: int = 1000, num_jobs: int = 1
) -> list[Shard]:
    """Writes the cuts of ``cuts_path`` (split into supervision-level cuts) as Shar shards of
    ``shard_size`` cuts with FLAC audio into ``out_dir``, then the index; returns the shards.
    An export of the same manifest (path, size, time) with the same shard size is kept."""
    cuts_path, out_dir = Path(cuts_path), Path(out_dir)
    if shard_size < 1 or num_jobs < 1:
        raise ConfigError(f"shard_size and num_jobs must be >= 1, got {shard_size}, {num_jobs}")
    if not cuts_path.is_file():
        raise FileNotFoundError(f"cut manifest not found: {cuts_path}")
    stamp = _source_stamp(cuts_path, shard_size)
    if is_shar_dir(out_dir):
        index = json.loads((out_dir / INDEX).read_text())
        if {k: index.get(k) for k in stamp} == stamp:
            logger.info("skip: %s already holds the Shar export of %s", out_dir, cuts_path)
            return read_index(out_dir)
        (out_dir / INDEX).unlink()  # stale: written again below, after the shards
    out_dir.mkdir(parents=True, exist_ok=True)
    cuts = split_supervisions(CutSet.from_file(cuts_path))
    written = cuts.to_shar(
        out_dir,
        fields={"recording": "flac"},
        shard_size=shard_size,
        num_jobs=num_jobs,
        verbose=True,
    )
    shards = []
    for cuts_file, audio_file in zip(sorted(written["cuts"]), sorted(written["recording"])):
        durations = [c.duration for c in CutSet.from_file(cuts_file)]
        shards.append(
            {
                "cuts": Path(cuts_file).name,
                "recording": Path(audio_file).name,
                "num_cuts": len(durations),
                "duration": round(sum(durations), 3),
            }
        )
    total = sum(s["duration"] for s in shards)
    index = {**stamp, "num_cuts": sum(s["num_cuts"] for s in shards), "duration": total}
    atomic_write_text(out_dir / INDEX, json.dumps({**index, "shards": shards}, indent=1) + "\n")
    logger.info("wrote %d shards (%d cuts, %.1f h) to %s", len(shards), index["num_cuts"],
                total / 3600, out_dir)  # fmt: skip
    return read_index(out_dir)


class SharCuts:
    """A lazy, re-iterable cut source over Shar directories (see the module docstring).

    Unbound (as ``read_cuts`` makes it), it reads every shard in order. :meth:`for_ranks` gives
    the training stream of one rank; its epoch is read, each time it is iterated, from the
    sampler given to :meth:`follow` (0 before that). Cuts come with their audio in memory.
    """

    # The export wrote one supervision per cut: ``split_supervisions`` leaves the source as it
    # is, so that ``build_data_sampler`` still finds it at the top of the CutSet.
    supervision_level = True

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.shards = [s for d in self.dirs for s in read_index(d)]
        if not self.shards:
            raise FileNotFoundError(f"no shards in {[str(d) for d in self.dirs]}")
        self.rank, self.world_size = 0, 1
        self.bound = False  # True: the per-rank training stream of for_ranks
        self.seed, self.shuffle_shards = 0, False
        self._sampler = None

    def for_ranks(self, rank: int, world_size: int, seed: int, shuffle_shards: bool) -> SharCuts:
        """The training stream of ``rank`` among ``world_size`` ranks (a new object)."""
        if world_size > len(self.shards):
            raise ConfigError(
                f"{[str(d) for d in self.dirs]}: {len(self.shards)} Shar shards cannot feed "
                f"{world_size} ranks; export with a smaller --shard-size"
            )
        bound = copy.copy(self)
        bound.rank, bound.world_size, bound.bound = rank, world_size, True
        bound.seed, bound.shuffle_shards = seed, shuffle_shards
        logger.info(
            "training from %d Shar shards (%.1f h): rank %d of %d reads %d of them in epoch 0%s",
            len(self.shards),
            self.duration / 3600,
            rank,
            world_size,
            len(bound.shards_of(0)),
            ", reshuffled each epoch" if shuffle_shards else "",
        )
        return bound

    def follow(self, sampler) -> None:
        """Read the epoch from ``sampler`` (a lhotse sampler sets it before iterating)."""
        self._sampler = sampler

    @property
    def epoch(self) -> int:
        return int(getattr(self._sampler, "epoch", 0))

    def shards_of(self, epoch: int) -> list[Shard]:
        """This rank's shards in ``epoch``, in reading order."""
        order = list(self.shards)
        if self.bound and self.shuffle_shards:
            digest = hashlib.blake2b(f"{self.seed}:{epoch}".encode(), digest_size=8).digest()
            random.Random(int.from_bytes(digest, "little")).shuffle(order)
        if self.world_size == 1:
            return order
        loads = [0.0] * self.world_size
        mine = []
        for shard in order:  # the rank with the least audio so far takes the next shard
            rank = min(range(self.world_size), key=lambda r: (loads[r], r))
            loads[rank] += shard.duration
            if rank == self.rank:
                mine.append(shard)
        return mine

    def __iter__(self) -> Iterator:
        shards = self.shards_of(self.epoch)
        fields = {"cuts": [s.cuts for s in shards], "recording": [s.recording for s in shards]}
        return iter(LazySharIterator(fields=fields))

    def __len__(self) -> int:
        return sum(s.num_cuts for s in self.shards_of(self.epoch))

    @property
    def duration(self) -> float:
        """Seconds of audio in every shard (all ranks), from the index."""
        return sum(s.duration for s in self.shards)


def total_duration(cuts: CutSet) -> float:
    """Seconds of audio in ``cuts``: from the index for a Shar source (no audio read), else
    summed over the cuts."""
    if isinstance(cuts.data, SharCuts):
        return cuts.data.duration
    return sum(c.duration for c in cuts)
