"""I/O throughput of training data: audio read from a cut manifest's files vs from Shar shards.

What the data loader does per cut before feature extraction, timed alone: read and decode its
audio (``cut.load_audio()``). The manifest is read in a shuffled order (a training sampler's
buffer draws cuts from all over the manifest, so each cut opens its own file somewhere on disk);
the Shar export is read as training reads it, shard after shard, front to back. Figures: cuts per
second and seconds of audio per second (median of ``--repeats`` passes).

``--cold`` first evicts every file a pass reads from the page cache (``posix_fadvise
DONTNEED``, per file: other processes' caches are untouched), so that the pass reads the disk;
without it, the files are in memory after the first pass and only the per-file overhead (open,
header parse) differs. Usage::

    python -m speechkit.bin.export_shar --cuts data/pb/cuts_train.jsonl.gz --out data/pb/shar
    python tools/bench_shar_io.py --cuts data/pb/cuts_train.jsonl.gz --shar data/pb/shar \\
        [--cold] [--repeats 3] [--results-md egs/librispeech/s2t1/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from lhotse import CutSet

from speechkit.data.segments import split_supervisions
from speechkit.data.shar import SharCuts
from speechkit.report import provenance_lines, update_markdown

TITLE = "Data loading: audio I/O from manifests vs Shar shards"


def evict(paths: Iterable[str | Path]) -> None:
    """Drops ``paths`` from the page cache (where the OS supports it; else a no-op)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_pass(cuts: Iterable) -> tuple[int, float, float]:
    """(cuts, seconds of audio, wall seconds) of loading every cut's audio once."""
    n, audio = 0, 0.0
    start = time.perf_counter()
    for cut in cuts:
        samples = cut.load_audio()
        n += 1
        audio += samples.shape[-1] / cut.sampling_rate
    return n, audio, time.perf_counter() - start


def measure(make_cuts, files: list[str], repeats: int, cold: bool) -> dict:
    """Median throughput over ``repeats`` passes of ``make_cuts()``."""
    runs = []
    for _ in range(repeats):
        if cold:
            evict(files)
        runs.append(read_pass(make_cuts()))
    n, audio, _ = runs[0]
    wall = statistics.median(r[2] for r in runs)
    return {
        "cuts": n,
        "audio_s": audio,
        "wall_s": wall,
        "cuts_per_s": n / wall,
        "x_rt": audio / wall,
    }


def run(cuts_path: Path, shar_dir: Path, repeats: int, cold: bool, seed: int) -> dict[str, dict]:
    manifest = list(split_supervisions(CutSet.from_file(cuts_path)))
    random.Random(seed).shuffle(manifest)
    audio_files = sorted({s.source for c in manifest for s in c.recording.sources})
    shar = SharCuts([shar_dir])
    shard_files = [p for s in shar.shards for p in (s.cuts, s.recording)]
    return {
        "manifest (shuffled files)": measure(lambda: manifest, audio_files, repeats, cold),
        "Shar (sequential shards)": measure(lambda: shar, shard_files, repeats, cold),
    }


def markdown(results: dict[str, dict], cold: bool, command: str) -> str:
    cache = "cold page cache (files evicted before each pass)" if cold else "warm page cache"
    lines = [
        f"## {TITLE}, {cache}",
        "",
        "| source | cuts | audio (s) | wall (s) | cuts/s | audio s/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['cuts']} | {r['audio_s']:.0f} | {r['wall_s']:.2f} | "
            f"{r['cuts_per_s']:.0f} | {r['x_rt']:.0f} |"
        )
    lines += ["", *provenance_lines(command), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cuts", type=Path, required=True, help="cut manifest (.jsonl.gz)")
    p.add_argument("--shar", type=Path, required=True, help="its Shar export (export_shar)")
    p.add_argument("--repeats", type=int, default=3, help="passes per source (median)")
    p.add_argument("--cold", action="store_true", help="evict the files before each pass")
    p.add_argument("--seed", type=int, default=0, help="shuffle of the manifest order")
    p.add_argument("--results-md", type=Path, help="write a section into this markdown file")
    args = p.parse_args(argv)
    results = run(args.cuts, args.shar, args.repeats, args.cold, args.seed)
    command = shlex.join(
        ["python", "tools/bench_shar_io.py", *(sys.argv[1:] if argv is None else argv)]
    )
    section = markdown(results, args.cold, command)
    print(section)
    if args.results_md:
        cache = (
            "cold page cache (files evicted before each pass)" if args.cold else "warm page cache"
        )
        update_markdown(args.results_md, f"{TITLE}, {cache}", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
