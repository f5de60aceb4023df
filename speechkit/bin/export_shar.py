"""Export a cut manifest to lhotse Shar shards (sequential tars of FLAC audio) for training.

    python -m speechkit.bin.export_shar --cuts data/cuts_train.jsonl.gz --out data/shar_train \\
        [--shard-size 1000] [--num-jobs 4]

Then train from the directory: ``speechkit train ... --train-cuts data/shar_train``. Each DDP
rank reads its own shards front to back; see ``speechkit/data/shar.py``. An export of the same
manifest with the same shard size is kept (``skip``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from speechkit.config import ConfigError
from speechkit.data.shar import export_shar

logger = logging.getLogger("speechkit.bin.export_shar")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit export-shar",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cuts", required=True, help="lhotse cut manifest (.jsonl.gz)")
    p.add_argument("--out", required=True, help="output directory for the shards")
    p.add_argument("--shard-size", type=int, default=1000, help="cuts per shard")
    p.add_argument("--num-jobs", type=int, default=1, help="processes writing shards")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        export_shar(args.cuts, args.out, shard_size=args.shard_size, num_jobs=args.num_jobs)
    except (ConfigError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
