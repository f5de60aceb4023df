"""Average checkpoints into one (the weights decoding and packing use).

    python -m speechkit.bin.average_checkpoints --exp exp/run --best 5          # -> exp/run/model_avg.pt
    python -m speechkit.bin.average_checkpoints --inputs a.pt b.pt --out avg.pt

``--best N`` picks the N best checkpoints of ``EXP/checkpoints`` by the training's
``trainer.select_by`` (the validation loss unless the config says otherwise).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from speechkit.train.checkpoint import best_checkpoints, save_averaged

logger = logging.getLogger("speechkit.bin.average_checkpoints")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exp", help="experiment directory (uses EXP/checkpoints)")
    p.add_argument("--best", type=int, default=5, help="how many best checkpoints (with --exp)")
    p.add_argument("--inputs", nargs="+", help="explicit checkpoint files, oldest first")
    p.add_argument("--out", help="output file (default: EXP/model_avg.pt)")
    args = p.parse_args(argv)
    if bool(args.exp) == bool(args.inputs):
        p.error("give either --exp DIR [--best N] or --inputs FILE... --out FILE")
    if args.inputs and not args.out:
        p.error("--inputs needs --out")
    if args.best < 1:
        p.error("--best must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.inputs:
        paths = [Path(p) for p in args.inputs]
        out = Path(args.out)
    else:
        exp = Path(args.exp)
        paths = best_checkpoints(exp / "checkpoints", args.best)
        if not paths:
            logger.error("no checkpoints found in %s", exp / "checkpoints")
            return 1
        paths.sort(key=lambda p: int(p.stem.split("-")[1]))
        out = Path(args.out) if args.out else exp / "model_avg.pt"
    missing = [p for p in paths if not p.is_file()]
    if missing:
        logger.error("checkpoint not found: %s", missing[0])
        return 1
    save_averaged(paths, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
