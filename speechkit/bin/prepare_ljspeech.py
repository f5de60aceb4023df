"""Prepare LJSpeech with lhotse's recipe: train / dev / test cut manifests for TTS.

    python -m speechkit.bin.prepare_ljspeech --data-root /data --out data/ljspeech \\
        [--dev-size 250] [--test-size 250] [--download false]

``--data-root`` holds ``LJSpeech-1.1/`` (or is it). Writes ``cuts_{train,dev,test}.jsonl.gz``;
see ``speechkit/data/corpora/ljspeech.py``. A missing or partial corpus is reported (which file)
with exit status 1; a complete earlier preparation is kept (``skip``).
"""

from __future__ import annotations

import argparse
import sys

from speechkit.config import parse_bool
from speechkit.data.corpora.common import run_preparation
from speechkit.data.corpora.ljspeech import LJSpeechConfig, prepare_ljspeech


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit prepare-ljspeech",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", required=True, help="directory holding LJSpeech-1.1/")
    p.add_argument("--out", required=True, help="output directory for the manifests")
    p.add_argument("--dev-size", type=int, default=250, help="clips before the test set")
    p.add_argument("--test-size", type=int, default=250, help="last clips (by id)")
    p.add_argument("--download", type=parse_bool, default=False, help="true: fetch the corpus")
    args = p.parse_args(argv)
    return run_preparation(
        prepare_ljspeech,
        lambda: LJSpeechConfig(
            args.data_root, args.out, args.dev_size, args.test_size, args.download
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
