"""Pack a trained model into a self-contained directory (config, weights, tokenizer, checksums).

    python -m speechkit.bin.pack_model --checkpoint exp/run/model_avg.pt --out exp/run/packed

The directory layout is described in docs/design.md; load it with
``speechkit.pretrained.load_pretrained(DIR)``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from speechkit.pretrained import load_pretrained, pack

logger = logging.getLogger("speechkit.bin.pack_model")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="training checkpoint or model_avg.pt")
    p.add_argument("--out", required=True, help="output directory")
    args = p.parse_args(argv)
    out = pack(args.checkpoint, args.out)
    load_pretrained(out)  # verify checksums and that the weights load before reporting success
    logger.info("packed %s -> %s", args.checkpoint, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
