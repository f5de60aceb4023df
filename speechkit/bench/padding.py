"""Padding benchmark: how much of each batch is padding, with and without duration bucketing.

Runs the training sampler over one epoch of a cut manifest as training would (the config's
``data.sampler``, and with ``data.multitask: expand`` one cut per task), once with lhotse's
``DynamicBucketingSampler`` and once with the same duration budget but no bucketing, prints the
padding fraction (``speechkit.data.PaddingMeter``: padded seconds over batch seconds), batch count
and mean batch size of each, and optionally writes a section of RESULTS.md::

    speechkit bench padding --config conf/s2t/phrasebook_tiny.yaml \\
        --cuts data/cuts_train.jsonl.gz [--results-md RESULTS.md]

(or ``python -m speechkit.bench.padding ...``). No audio is read.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from statistics import mean

from lhotse import CutSet, combine

from speechkit.bench import cited_command
from speechkit.data import PaddingMeter, SamplerConfig, build_sampler, expand_tasks
from speechkit.report import provenance_lines, update_markdown
from speechkit.train.config import load_experiment_config

TITLE = "Padding fraction of training batches"
SAMPLERS = (("no bucketing (shuffled)", False), ("lhotse bucketing", True))


def training_cuts(paths: list[str], data_cfg) -> CutSet:
    """The cuts of ``paths`` as the sampler sees them in training: one per task with
    ``data.multitask: expand``, else as they are (eager: an epoch is iterated twice)."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"cut manifest not found: {missing[0]}")
    cuts = combine([CutSet.from_file(p) for p in paths])
    if data_cfg.multitask == "expand":
        cuts = expand_tasks(cuts, data_cfg.asr_languages, data_cfg.st_directions)
    return cuts.to_eager()


def epoch_stats(cuts: CutSet, sampler_cfg: SamplerConfig, seed: int) -> dict:
    """Padding fraction, batch count and mean batch size (cuts) of one epoch of ``sampler_cfg``."""
    sampler = build_sampler(cuts, sampler_cfg, seed=seed)
    sampler.set_epoch(0)
    meter = PaddingMeter()
    sizes = []
    for batch in sampler:
        meter.update(batch)
        sizes.append(len(batch))
    return {"padding": meter.value, "batches": len(sizes), "mean_batch": mean(sizes)}


def report(rows: list[tuple[str, dict]], n_cuts: int, s: SamplerConfig, command: str) -> str:
    """The RESULTS.md section: one table row per sampler, then the provenance lines."""
    lines = [
        f"## {TITLE}",
        "",
        f"One epoch of the training cuts as training sees them ({n_cuts} cuts), "
        f"max_duration {s.max_duration:g} s, {s.num_buckets} buckets.",
        "",
        "| sampler | padding | batches | mean batch (cuts) |",
        "|---|---|---|---|",
        *(
            f"| {n} | {100 * r['padding']:.1f}% | {r['batches']} | {r['mean_batch']:.1f} |"
            for n, r in rows
        ),
        "",
        *provenance_lines(command),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="speechkit bench padding", description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="experiment YAML (its data section is used)")
    p.add_argument("--cuts", required=True, nargs="+", help="lhotse cut manifest(s)")
    p.add_argument("--results-md", default=None, help="write the section into this file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    cfg = load_experiment_config(args.config)
    cuts = training_cuts(args.cuts, cfg.data)
    rows = []
    for name, bucketing in SAMPLERS:
        sampler_cfg = dataclasses.replace(cfg.data.sampler, bucketing=bucketing)
        stats = epoch_stats(cuts, sampler_cfg, args.seed)
        rows.append((name, stats))
        print(
            f"{name:26s} padding {100 * stats['padding']:5.1f}%  batches {stats['batches']:4d}  "
            f"mean batch {stats['mean_batch']:.1f} cuts"
        )
    if args.results_md:
        section = report(rows, len(cuts), cfg.data.sampler, cited_command("padding", argv))
        update_markdown(Path(args.results_md), TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
