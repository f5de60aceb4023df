"""Padding benchmark: how much of each batch is padding, with and without duration bucketing.

Runs the training sampler over one epoch of the training cuts exactly as
``speechkit.bin.train`` would, once with lhotse's ``DynamicBucketingSampler`` and once with the
same duration budget but no bucketing, and writes a section of RESULTS.md::

    python local/padding_report.py --config ../../../conf/s2t/phrasebook_tiny.yaml \
        --cuts data/phrasebook/cuts_train.jsonl.gz --results-md RESULTS.md
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from statistics import mean

from lhotse import CutSet

from speechkit.bin.train import load_cuts
from speechkit.data import PaddingMeter, build_sampler
from speechkit.report import provenance_lines, update_markdown
from speechkit.train.config import load_experiment_config


def epoch_stats(cuts: CutSet, sampler_cfg, seed: int) -> dict:
    """Padding fraction, batch count and mean batch size of one epoch of ``sampler_cfg``."""
    sampler = build_sampler(cuts, sampler_cfg, seed=seed)
    sampler.set_epoch(0)
    meter = PaddingMeter()
    sizes = []
    for batch in sampler:
        meter.update(batch)
        sizes.append(len(batch))
    return {"padding": meter.value, "batches": len(sizes), "mean_batch": mean(sizes)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--cuts", required=True)
    p.add_argument("--results-md", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    cfg = load_experiment_config(args.config)
    cuts = load_cuts([args.cuts], cfg).to_eager()  # as training sees them
    rows = []
    for name, bucketing in (("no bucketing (shuffled)", False), ("lhotse bucketing", True)):
        sampler_cfg = dataclasses.replace(cfg.data.sampler, bucketing=bucketing)
        stats = epoch_stats(cuts, sampler_cfg, args.seed)
        rows.append((name, stats))
        print(
            f"{name:26s} padding {100 * stats['padding']:5.1f}%  batches {stats['batches']:4d}  "
            f"mean batch {stats['mean_batch']:.1f} cuts"
        )
    if args.results_md:
        s = cfg.data.sampler
        lines = [
            "## Padding fraction of training batches",
            "",
            f"One epoch of the training cuts as training sees them ({len(cuts)} cuts), "
            f"max_duration {s.max_duration:g} s, {s.num_buckets} buckets.",
            "",
            "| sampler | padding | batches | mean batch (cuts) |",
            "|---|---|---|---|",
            *(
                f"| {n} | {100 * r['padding']:.1f}% | {r['batches']} | {r['mean_batch']:.1f} |"
                for n, r in rows
            ),
            "",
            *provenance_lines(shlex.join(["python", *sys.argv])),
            "",
        ]
        update_markdown(Path(args.results_md), lines[0][3:], "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
