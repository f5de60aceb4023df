"""Writes weakly labelled background clips without speech (the AudioSet-like part of a USS corpus).

    python -m speechkit.bin.prepare_background_clips --corpus data/phrasebook \\
        --out data/backgrounds --per-class 100

See ``speechkit/data/background_clips.py`` for why and for the layout of the output directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from speechkit.config import ConfigError
from speechkit.data.background_clips import BackgroundClipConfig, make_background_clips
from speechkit.data.mixtures import BACKGROUNDS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="phrasebook corpus directory (babble talkers)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--per-class", type=int, default=100, help="clips of each class")
    p.add_argument(
        "--classes",
        default=",".join(BACKGROUNDS),
        help=f"comma-separated background classes (default {','.join(BACKGROUNDS)})",
    )
    p.add_argument("--min-seconds", type=float, default=1.5, help="shortest clip")
    p.add_argument("--max-seconds", type=float, default=3.0, help="longest clip")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = BackgroundClipConfig(
            corpus_dir=args.corpus,
            out_dir=args.out,
            classes=[c.strip() for c in args.classes.split(",") if c.strip()],
            per_class=args.per_class,
            seconds=(args.min_seconds, args.max_seconds),
            seed=args.seed,
        )
        counts = make_background_clips(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        p.error(str(e))
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
