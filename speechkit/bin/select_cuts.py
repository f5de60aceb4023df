"""Write the cuts of a manifest spoken in some languages (e.g. the English ones, for an
English-only recogniser).

    speechkit select_cuts --cuts data/pool.jsonl.gz --languages eng --out data/pool_eng.jsonl.gz
"""

from __future__ import annotations

import argparse
import logging
import sys

from lhotse import CutSet

logger = logging.getLogger("speechkit.bin.select_cuts")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechkit select_cuts", description=__doc__.split("\n")[0])
    p.add_argument("--cuts", required=True, help="input manifest")
    p.add_argument("--languages", required=True, help="comma list of ISO 639-3 codes")
    p.add_argument("--out", required=True, help="output manifest")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    wanted = {lang.strip() for lang in args.languages.split(",") if lang.strip()}
    cuts = CutSet.from_file(args.cuts)
    kept = [c for c in cuts if c.supervisions and c.supervisions[0].language in wanted]
    CutSet.from_cuts(kept).to_file(args.out)
    logger.info("%s: %d cuts in %s", args.out, len(kept), sorted(wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
