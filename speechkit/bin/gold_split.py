"""Split a training pool by gold budget: a share of the audio keeps its gold text, the rest is
weakly transcribed.

    speechkit gold_split --pool data/pool.jsonl.gz --percents 2,5,10,25 --out-dir data/splits \\
        [--weak data/weak/real.jsonl.gz data/weak/syn25.jsonl.gz ...] [--seed 0]

Per budget P (% of each language's audio seconds, ``speechkit/data/gold_split.py``; budgets
nest) it writes into ``OUT_DIR/gold<P>/``::

    gold.jsonl.gz          the gold cuts (weak transcripts removed: they train on their gold text)
    rest.jsonl.gz          the other cuts of the pool, as they are
    weak_<name>.jsonl.gz   per --weak manifest <name>.jsonl.gz: its cuts that are not gold
    split.json             cuts and seconds per language of each file

The gold cuts are chosen from ``--pool``, never from a weak manifest, so every weak source
(whose manifests may have lost cuts to the bad-transcript checks) meets the same gold cuts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from lhotse import CutSet

from speechkit.checkpoint import atomic_write_text
from speechkit.data.gold_split import select_gold
from speechkit.data.weak import read_manifest, strip_weak

logger = logging.getLogger("speechkit.bin.gold_split")


def manifest_name(path: Path) -> str:
    """``data/weak/real.jsonl.gz`` -> ``real``."""
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def summary(cuts: list) -> dict:
    """Cuts and seconds per language, and in all."""
    n, sec = Counter(), Counter()
    for c in cuts:
        lang = c.supervisions[0].language
        n[lang] += 1
        sec[lang] += c.duration
    return {
        "cuts": {**dict(sorted(n.items())), "all": sum(n.values())},
        "seconds": {
            **{k: round(v, 2) for k, v in sorted(sec.items())},
            "all": round(sum(sec.values()), 2),
        },
    }


def write_split(pool: list, weak: dict[str, list], percent: float, seed: int, out: Path) -> dict:
    """Writes one budget's files (see the module docstring); returns its split.json dict."""
    gold_ids = select_gold(pool, percent / 100, seed)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "gold": [strip_weak(c) for c in pool if c.id in gold_ids],
        "rest": [c for c in pool if c.id not in gold_ids],
    }
    for name, cuts in weak.items():
        files[f"weak_{name}"] = [c for c in cuts if c.id not in gold_ids]
    for name, cuts in files.items():
        CutSet.from_cuts(cuts).to_file(out / f"{name}.jsonl.gz")
    info = {"percent": percent, "seed": seed, "files": {k: summary(v) for k, v in files.items()}}
    atomic_write_text(out / "split.json", json.dumps(info, indent=1) + "\n")
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit gold_split", description=__doc__.split("\n")[0])
    p.add_argument("--pool", required=True, type=Path, help="the training pool (gold text)")
    p.add_argument("--percents", required=True, help="gold budgets in %% of the audio: 2,5,10")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--weak", nargs="*", type=Path, default=[], help="weak manifests to split")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pool = read_manifest(args.pool)
    weak = {manifest_name(p): read_manifest(p) for p in args.weak}
    for name, cuts in weak.items():
        if not cuts:
            logger.warning("weak manifest %s is empty: see its report for the dropped cuts", name)
    for item in args.percents.split(","):
        percent = float(item)
        out = args.out_dir / f"gold{item.strip()}"
        info = write_split(pool, weak, percent, args.seed, out)
        gold = info["files"]["gold"]
        logger.info("%s: %d gold cuts, %.0f s (%s)", out, gold["cuts"]["all"],
                    gold["seconds"]["all"], gold["cuts"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
