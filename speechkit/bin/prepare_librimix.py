"""Prepare LibriMix (Libri2Mix) with lhotse's recipe: separation cuts with their sources kept.

    python -m speechkit.bin.prepare_librimix --data-root /data --out data/librimix \\
        [--train-parts train-clean-360] [--mix clean both] [--mode min] [--download false] \\
        [--num-jobs 4]

``--data-root`` holds ``LibriSpeech/``, ``wham_noise/`` and ``metadata/Libri2Mix/`` (LibriMix's
audio is generated from them, not downloaded; ``--download true`` fetches those three with
lhotse's downloaders). Writes ``cuts_train.jsonl.gz``, ``cuts_dev.jsonl.gz`` (dev-clean) and
``cuts_test.jsonl.gz`` (test-clean); see ``speechkit/data/corpora/librimix.py``. A missing or
partial input is reported (which part, which files) with exit status 1; a complete earlier
preparation is kept (``skip``).
"""

from __future__ import annotations

import argparse
import sys

from speechkit.config import parse_bool
from speechkit.data.corpora.common import run_preparation
from speechkit.data.corpora.librimix import MIXES, TRAIN_PARTS, LibriMixConfig, prepare_librimix


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="speechkit prepare-librimix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-root", required=True,
                   help="directory holding LibriSpeech/, wham_noise/ and metadata/")  # fmt: skip
    p.add_argument("--out", required=True, help="output directory for the manifests")
    p.add_argument("--train-parts", nargs="+", default=["train-clean-360"], choices=TRAIN_PARTS)
    p.add_argument("--mix", nargs="+", default=["clean"], choices=MIXES,
                   help="clean: two talkers (target-speaker cuts); both: two talkers and noise "
                        "(speech-extraction cuts)")  # fmt: skip
    p.add_argument("--mode", default="min", choices=["min", "max"],
                   help="min: mixtures end with the shorter talker, max: the longer")  # fmt: skip
    p.add_argument("--download", type=parse_bool, default=False,
                   help="true: fetch LibriSpeech, WHAM! noise and the metadata first")  # fmt: skip
    p.add_argument("--num-jobs", type=int, default=1, help="threads for lhotse's recipes")
    p.add_argument("--seed", type=int, default=0, help="picks the enrollment utterances")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_preparation(
        prepare_librimix,
        lambda: LibriMixConfig(
            data_root=args.data_root,
            out_dir=args.out,
            train_parts=args.train_parts,
            mix=args.mix,
            mode=args.mode,
            download=args.download,
            num_jobs=args.num_jobs,
            seed=args.seed,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
