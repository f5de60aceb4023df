"""Prepare LibriSpeech with lhotse's recipe: cut manifests in speechkit's conventions.

    python -m speechkit.bin.prepare_librispeech --data-root /data --out data/librispeech \\
        [--train-parts train-clean-100] [--dev-parts dev-clean dev-other] \\
        [--test-parts test-clean test-other] [--download false] [--num-jobs 4]

``--data-root`` holds ``LibriSpeech/`` (or is it). Writes ``cuts_train.jsonl.gz``,
``cuts_dev.jsonl.gz`` and ``cuts_test_clean.jsonl.gz`` / ``cuts_test_other.jsonl.gz``; see
``speechkit/data/corpora/librispeech.py``. A missing or partial corpus is reported (which part,
which files) with exit status 1; a complete earlier preparation is kept (``skip``).
"""

from __future__ import annotations

import argparse
import sys

from speechkit.config import parse_bool
from speechkit.data.corpora.common import run_preparation
from speechkit.data.corpora.librispeech import LibriSpeechConfig, prepare_librispeech


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="speechkit prepare-librispeech",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", required=True, help="directory holding LibriSpeech/")
    p.add_argument("--out", required=True, help="output directory for the manifests")
    p.add_argument("--train-parts", nargs="+", default=["train-clean-100"])
    p.add_argument("--dev-parts", nargs="*", default=["dev-clean", "dev-other"])
    p.add_argument("--test-parts", nargs="*", default=["test-clean", "test-other"])
    p.add_argument("--download", type=parse_bool, default=False, help="true: fetch missing parts")
    p.add_argument("--lowercase", type=parse_bool, default=True, help="lower-case transcripts")
    p.add_argument("--num-jobs", type=int, default=1, help="threads for parsing the audio")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_preparation(
        prepare_librispeech,
        lambda: LibriSpeechConfig(
            data_root=args.data_root,
            out_dir=args.out,
            train_parts=args.train_parts,
            dev_parts=args.dev_parts,
            test_parts=args.test_parts,
            download=args.download,
            lowercase=args.lowercase,
            num_jobs=args.num_jobs,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
