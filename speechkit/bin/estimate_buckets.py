"""Estimate 2D bucket edges (input duration x output tokens) from training cuts.

    python -m speechkit.bin.estimate_buckets --cuts data/cuts_train.jsonl.gz \\
        --tokenizer data/tokenizer --out exp/buckets.yaml [--max-frame-padding 0.03] \\
        [--max-token-padding 0.1] [--min-bucket-seconds 120] [--max-token-buckets 4]

Writes a bucket YAML (format in ``speechkit/data/buckets.py``) that a training config uses with
``data.sampler.buckets: exp/buckets.yaml``. Duration rows are cut where a row's frame padding
would pass ``--max-frame-padding``, each row into token columns where a column's token padding
would pass ``--max-token-padding``; every bucket holds at least ``--min-bucket-seconds`` of audio
(set it to a few batches' worth: about 2x ``data.sampler.max_duration``). Cuts longer than
``--max-cut-duration`` are left out (training drops them too). Add per-bucket batch sizes with
``python -m speechkit.train.batch_search``.
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
from speechkit.data.segments import split_supervisions
from speechkit.text.sentencepiece import SentencePieceTokenizer

logger = logging.getLogger("speechkit.estimate_buckets")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cuts", required=True, nargs="+", help="lhotse cut manifest(s)")
    p.add_argument("--tokenizer", required=True, help="directory written by train_tokenizer")
    p.add_argument("--max-frame-padding", type=float, default=0.03, help="per row, 0-1")
    p.add_argument("--max-token-padding", type=float, default=0.10, help="per column, 0-1")
    p.add_argument("--min-bucket-seconds", type=float, default=120.0, help="audio per bucket")
    p.add_argument("--max-token-buckets", type=int, default=4, help="token columns per row")
    p.add_argument("--max-cut-duration", type=float, default=30.0, help="seconds")
    p.add_argument("--max-cuts", type=int, default=200_000, help="cuts read for the estimate")
    p.add_argument("--out", required=True, help="bucket YAML to write")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if not (0 < args.max_frame_padding < 1 and 0 < args.max_token_padding < 1):
        logger.error("--max-frame-padding and --max-token-padding must lie in (0, 1)")
        return 2
    if args.max_token_buckets < 1 or args.min_bucket_seconds < 0:
        logger.error("--max-token-buckets must be >= 1 and --min-bucket-seconds >= 0")
        return 2
    missing = [p for p in args.cuts if not Path(p).is_file()]
    if missing:
        logger.error("cut manifest not found: %s", missing[0])
        return 2
    tokenizer = SentencePieceTokenizer.load(args.tokenizer)
    count = TokenCounter(tokenizer, cache_size=0)
    parts = [CutSet.from_file(p) for p in args.cuts]
    # Batches are made of supervision-level cuts (see data/segments.py): measure those.
    cuts = split_supervisions(parts[0] if len(parts) == 1 else combine(parts))
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
    grid = estimate_grid(
        durations,
        tokens,
        max_frame_padding=args.max_frame_padding,
        max_token_padding=args.max_token_padding,
        min_bucket_seconds=args.min_bucket_seconds,
        max_token_buckets=args.max_token_buckets,
    )
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
