"""Prepare MuST-C with lhotse's recipe: speech translation and English ASR cut manifests.

    python -m speechkit.bin.prepare_must_c --data-root /data/MUSTC_v1.0 --out data/must_c \\
        [--language-pairs en-de [en-fr ...]] [--download false] [--num-jobs 4]

``--data-root`` holds the extracted ``en-<tgt>/`` directories (or is the one pair's). Writes
``cuts_train.jsonl.gz``, ``cuts_dev.jsonl.gz``, ``cuts_tst_COMMON.jsonl.gz`` and
``cuts_tst_HE.jsonl.gz``: English speech with its transcript and its translation; see
``speechkit/data/corpora/must_c.py``. A missing or partial corpus is reported (which pair, which
split, which files) with exit status 1, as is ``--download true`` (MuST-C sits behind a licence
form: the message says where); a complete earlier preparation is kept (``skip``).
"""

from __future__ import annotations

import argparse
import sys

from speechkit.config import parse_bool
from speechkit.data.corpora.common import run_preparation
from speechkit.data.corpora.must_c import MustCConfig, prepare_must_c


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="speechkit prepare-must-c",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", required=True, help="directory holding en-<tgt>/")
    p.add_argument("--out", required=True, help="output directory for the manifests")
    p.add_argument("--language-pairs", nargs="+", default=["en-de"], help="e.g. en-de en-fr")
    p.add_argument(
        "--download", type=parse_bool, default=False, help="true: an error saying where to get it"
    )
    p.add_argument("--num-jobs", type=int, default=1, help="processes for parsing the audio")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_preparation(
        prepare_must_c,
        lambda: MustCConfig(
            data_root=args.data_root,
            out_dir=args.out,
            language_pairs=args.language_pairs,
            download=args.download,
            num_jobs=args.num_jobs,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
