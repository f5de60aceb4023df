"""One time-boxed training run of the GPU check, through the real entry point, and its figures.

    python tools/gpu_check/train.py --name buckets1d --corpus WORK/corpus --exp WORK/exp \
        --out OUT --seconds 60 [--dry-run] [--set KEY=VALUE ...]

Runs ``python -m speechkit.bin.train`` on the corpus of ``tools/gpu_check/corpus.py`` on the GPU
for ``--seconds`` of training (``trainer.max_minutes``), logging every step, then writes
``OUT/train_<name>.json``::

    {name, command, steps, seconds, steps_per_s, epochs_done, audio_s_per_s, padding,
     first_loss, last_loss, finite, attention}

``audio_s_per_s`` counts whole epochs only: the corpus's training audio (seconds) times the
epochs completed, over the training wall time at the end of the last completed epoch (it
includes the per-epoch checkpoint writes). ``padding`` is the trainer's per-epoch padded-frame
fraction, ``attention`` its log lines about the attention backend (what runs, what falls back).
The run's ``train_log.csv`` and ``train.log`` are copied to ``OUT/train_<name>/``.

``--dry-run`` checks the config with every override (the same loader ``bin.train`` uses) and
that the corpus is there, writes the planned command, and stops before training.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = 77  # exit status the GPU check records as "skipped"
DEFAULT_CONFIG = ROOT / "conf/s2t/phrasebook_tiny.yaml"
_EPOCH_DONE = re.compile(r"epoch (\d+) done at step (\d+): padding ([\d.]+)% of frames")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="run name: OUT/train_<name>.json")
    p.add_argument("--corpus", type=Path, required=True, help="from tools/gpu_check/corpus.py")
    p.add_argument("--exp", type=Path, required=True, help="experiment directories go here")
    p.add_argument("--out", type=Path, required=True, help="figures go here")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--seconds", type=float, default=60.0, help="training wall time")
    p.add_argument("--workers", type=int, default=6, help="data loader processes")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[])
    return p.parse_args(argv)


def overrides(args: argparse.Namespace) -> list[str]:
    """The run's config overrides: time box, every step logged, small checkpoints, GPU."""
    return [
        "trainer.device=cuda",
        f"trainer.max_minutes={args.seconds / 60:.4g}",
        "trainer.max_steps=0",
        "trainer.max_epochs=100000",
        "trainer.log_every_steps=1",
        "trainer.keep_checkpoints=1",
        "trainer.average_best=1",
        f"data.num_workers={args.workers}",
        *args.overrides,
    ]


def command(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "speechkit.bin.train", "--config", str(args.config),
        "--train-cuts", str(args.corpus / "cuts_train.jsonl.gz"),
        "--tokenizer", str(args.corpus / "tokenizer"),
        "--out", str(args.exp / args.name), "--set", *overrides(args),
    ]  # fmt: skip


def train_audio_seconds(cuts_path: Path, max_cut_duration: float) -> float:
    """Seconds of audio one training epoch sees (the sampler drops longer cuts)."""
    from lhotse import CutSet

    return sum(c.duration for c in CutSet.from_file(cuts_path) if c.duration <= max_cut_duration)


def summarize(exp_dir: Path, audio_per_epoch: float) -> dict:
    """Figures of a finished run from its ``train_log.csv`` (one row per step) and ``train.log``."""
    rows = []
    if (exp_dir / "train_log.csv").is_file():
        with open(exp_dir / "train_log.csv") as f:
            rows = list(csv.DictReader(f))
    log = (exp_dir / "train.log").read_text() if (exp_dir / "train.log").is_file() else ""
    done = [(int(e), int(s), float(p)) for e, s, p in _EPOCH_DONE.findall(log)]
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    elapsed = {int(r["step"]): float(r["elapsed"]) for r in rows}
    summary = {
        "steps": int(rows[-1]["step"]) if rows else 0,
        "seconds": float(rows[-1]["elapsed"]) if rows else 0.0,
        "epochs_done": len(done),
        "padding": [p / 100 for _, _, p in done],
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "finite": bool(losses) and all(math.isfinite(x) for x in losses),
        "attention": sorted(
            {line.split(": ", 1)[-1] for line in log.splitlines() if "attention backend" in line}
        ),  # fmt: skip
    }
    summary["steps_per_s"] = summary["steps"] / summary["seconds"] if summary["seconds"] else None
    last_epoch_step = done[-1][1] if done else None
    if last_epoch_step in elapsed and elapsed[last_epoch_step] > 0:
        summary["audio_s_per_s"] = len(done) * audio_per_epoch / elapsed[last_epoch_step]
    else:
        summary["audio_s_per_s"] = None
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from speechkit.train.config import load_experiment_config

    cfg = load_experiment_config(args.config, overrides(args))  # fails here on a bad override
    for needed in ("cuts_train.jsonl.gz", "tokenizer"):
        if not (args.corpus / needed).exists():
            print(f"skipped: no corpus ({args.corpus / needed} is missing; see corpus.py)")
            return SKIPPED
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / f"train_{args.name}.json"
    cmd = command(args)
    if args.dry_run:
        report.write_text(json.dumps({"name": args.name, "planned": cmd}, indent=1) + "\n")
        print("dry run: config and overrides valid; would run:", " ".join(cmd))
        return 0
    exp_dir = args.exp / args.name
    shutil.rmtree(exp_dir, ignore_errors=True)
    print("+", " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    audio = train_audio_seconds(
        args.corpus / "cuts_train.jsonl.gz", cfg.data.sampler.max_cut_duration
    )
    result = {"name": args.name, "command": cmd, "exit_code": rc, "audio_per_epoch": audio}
    result.update(summarize(exp_dir, audio))
    report.write_text(json.dumps(result, indent=1) + "\n")
    keep = args.out / f"train_{args.name}"
    keep.mkdir(exist_ok=True)
    for name in ("train_log.csv", "train.log"):
        if (exp_dir / name).is_file():
            shutil.copy2(exp_dir / name, keep / name)
    print(json.dumps({k: v for k, v in result.items() if k != "command"}))
    return 0 if rc == 0 and result["finite"] and result["steps"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
