"""Convert between Kaldi/ESPnet (OWSM) data directories and lhotse manifests.

    python -m speechkit.bin.kaldi_data import --dir data/train --manifests manifests/train \\
        [--language eng] [--allow-pipes]
    python -m speechkit.bin.kaldi_data export --dir data/train --manifests manifests/train

``import`` reads DIR (wav.scp with paths, or ``cmd |`` pipes: shell commands, run only with
``--allow-pipes``; segments, text with or without the OWSM ``<lang><task><notimestamps>``
prefix, utt2spk, text.ctc, text.prev) and writes MANIFESTS/recordings.jsonl.gz,
supervisions.jsonl.gz and cuts.jsonl.gz. ``export`` reads MANIFESTS/cuts.jsonl.gz and writes an
OWSM data directory, text.prev and text.ctc generated. File formats and conventions:
``speechkit/data/kaldi.py``. ``--language`` is the ISO 639-3 code of lines (import) or
supervisions (export) that carry none.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lhotse import CutSet

from speechkit.data.kaldi import KaldiDataError, read_kaldi_dir, write_kaldi_dir

logger = logging.getLogger("speechkit.bin.kaldi_data")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("action", choices=["import", "export"])
    p.add_argument("--dir", required=True, help="Kaldi/ESPnet data directory")
    p.add_argument("--manifests", required=True, help="directory of lhotse manifests")
    p.add_argument("--language", default=None, help="ISO 639-3 code for text without a prefix")
    p.add_argument("--allow-pipes", action="store_true",
                   help="run wav.scp lines of the form 'cmd |' through the shell (trusted files only)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    manifests = Path(args.manifests)
    try:
        if args.action == "import":
            result = read_kaldi_dir(
                args.dir, args.language, progress=True, allow_pipes=args.allow_pipes
            )
            manifests.mkdir(parents=True, exist_ok=True)
            result.recordings.to_file(manifests / "recordings.jsonl.gz")
            result.supervisions.to_file(manifests / "supervisions.jsonl.gz")
            result.cuts.to_file(manifests / "cuts.jsonl.gz")
            skipped = sum(result.skipped.values())
            logger.info("%s -> %s: %d cuts, %d skipped %s", args.dir, manifests,
                        len(result.cuts), skipped, dict(result.skipped))  # fmt: skip
        else:
            path = manifests / "cuts.jsonl.gz"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no cut manifest (run 'import' first?)")
            write_kaldi_dir(CutSet.from_file(path), args.dir, args.language)
    except (KaldiDataError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
