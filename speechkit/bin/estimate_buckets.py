"""Estimate 2D bucket edges (input duration x output tokens) from training cuts.

    python -m speechkit.bin.estimate_buckets --cuts data/cuts_train.jsonl.gz \\
        --tokenizer data/tokenizer --num-buckets 8 --num-token-buckets 3 --out exp/buckets.yaml

Writes a bucket YAML (format in ``speechkit/data/buckets.py``) that a training config uses with
``data.sampler.buckets: exp/buckets.yaml``. Durations are split into ``--num-buckets`` rows of
about equal total audio, each row into ``--num-token-buckets`` columns of about equal cut count.
Cuts longer than ``--max-cut-duration`` are left out (training drops them too). Add per-bucket
batch sizes with ``python -m speechkit.train.batch_search``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

from lhotse import CutSet, combine
from tqdm import tqdm

from speechkit.data.buckets import TokenCounter, decoder_texts, estimate_grid
from speechkit.tokenizer import Tokenizer

logger = logging.getLogger("speechkit.estimate_buckets")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cuts", required=True, nargs="+", help="lhotse cut manifest(s)")
    p.add_argument("--tokenizer", required=True, help="directory written by train_tokenizer")
    p.add_argument("--num-buckets", type=int, default=8, help="duration rows")
    p.add_argument("--num-token-buckets", type=int, default=3, help="token columns per row")
    p.add_argument("--max-cut-duration", type=float, default=30.0, help="seconds")
    p.add_argument("--max-cuts", type=int, default=200_000, help="cuts read for the estimate")
    p.add_argument("--out", required=True, help="bucket YAML to write")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.num_buckets < 1 or args.num_token_buckets < 1:
        logger.error("--num-buckets and --num-token-buckets must be >= 1")
        return 2
    missing = [p for p in args.cuts if not Path(p).is_file()]
    if missing:
        logger.error("cut manifest not found: %s", missing[0])
        return 2
    tokenizer = Tokenizer.load(args.tokenizer)
    count = TokenCounter(tokenizer, cache_size=0)
    parts = [CutSet.from_file(p) for p in args.cuts]
    cuts = parts[0] if len(parts) == 1 else combine(parts)
    durations, tokens, targets, too_long = [], [], 1, 0
    for cut in tqdm(itertools.islice(cuts, args.max_cuts), desc="measuring cuts", unit="cut"):
        if cut.duration > args.max_cut_duration:
            too_long += 1
            continue
        durations.append(cut.duration)
        tokens.append(count(cut))
        targets = max(targets, len(decoder_texts(cut)))
    if too_long:
        logger.warning("left out %d cuts longer than %.1f s", too_long, args.max_cut_duration)
    if not durations:
        logger.error("no usable cuts in %s", ", ".join(args.cuts))
        return 1
    grid = estimate_grid(durations, tokens, args.num_buckets, args.num_token_buckets)
    grid.targets_per_cut = targets
    grid.tokenizer = str(Path(args.tokenizer).resolve())
    grid.save(args.out)
    logger.info(
        "%d cuts -> %d buckets (%d duration rows) written to %s",
        len(durations),
        grid.num_buckets,
        len(grid.duration_edges),
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
