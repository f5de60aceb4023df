"""Builds separation mixtures (sources kept) from a phrasebook corpus.

    python -m speechkit.bin.prepare_mixtures --corpus data/phrasebook --out data/mixtures \\
        --per-utterance train=4,dev=2,test=5 --snr-min -5 --snr-max 15

See ``speechkit/data/mixtures.py`` for the layout of the output directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from speechkit.config import ConfigError
from speechkit.data.mixtures import MixtureConfig, make_mixtures


def parse_counts(text: str) -> dict[str, int]:
    """``"train=4,test=5"`` -> ``{"train": 4, "test": 5}``; ConfigError naming a bad item."""
    counts = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        split, _, value = item.partition("=")
        try:
            counts[split.strip()] = int(value)
        except ValueError:
            raise ConfigError(f"--per-utterance: expected SPLIT=COUNT, got {item!r}") from None
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="phrasebook corpus directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--per-utterance", default="train=4,dev=2,test=5",
                   help="mixtures per clean utterance, by split (train, dev, test)")  # fmt: skip
    p.add_argument("--snr-min", type=float, default=-5.0, help="lowest SNR in dB")
    p.add_argument("--snr-max", type=float, default=15.0, help="highest SNR in dB")
    p.add_argument("--speaker-share", type=float, default=0.2,
                   help="fraction of mixtures whose interference is another speaker")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = MixtureConfig(
            corpus_dir=args.corpus,
            out_dir=args.out,
            per_utterance=parse_counts(args.per_utterance),
            snr_min_db=args.snr_min,
            snr_max_db=args.snr_max,
            speaker_share=args.speaker_share,
            seed=args.seed,
        )
        counts = make_mixtures(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        p.error(str(e))
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
