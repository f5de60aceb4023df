"""What every corpus preparation shares: its error, atomic manifests, the completion marker, and
the body of a ``prepare_<corpus>`` entry point (:func:`run_preparation`).

A prepared directory holds ``cuts_<split>.jsonl.gz`` per split and, written last,
``prepare_args.json`` (the arguments that determine its content). A later run with the same
arguments finds them and does nothing, so a recipe's data stage can be re-run freely; an
interrupted run leaves no marker (and no half-written manifest), so it starts again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lhotse import CutSet

from speechkit.checkpoint import atomic_write_text

__all__ = [
    "CorpusError",
    "cuts_path",
    "is_prepared",
    "mark_prepared",
    "run_preparation",
    "write_cuts",
]

logger = logging.getLogger(__name__)

MARKER = "prepare_args.json"


class CorpusError(FileNotFoundError):
    """A corpus directory that is missing, or lacks parts or files; the message says which."""


def run_preparation(prepare: Callable[[Any], Any], make_config: Callable[[], Any]) -> int:
    """What a ``speechkit.bin.prepare_<corpus>`` entry point does once its arguments are read:
    logs to stderr, builds the config and prepares. Exit status 0, or 1 with the error logged
    (no traceback) for a bad config or a missing or partial corpus."""
    from speechkit.config import ConfigError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        prepare(make_config())
    except (ConfigError, CorpusError) as e:
        logger.error("%s", e)
        return 1
    return 0


def cuts_path(out_dir: str | Path, split: str) -> Path:
    """``out_dir/cuts_<split>.jsonl.gz`` (a ``-`` in ``split`` becomes ``_``: ``test_clean``)."""
    return Path(out_dir) / f"cuts_{split.replace('-', '_')}.jsonl.gz"


def write_cuts(cuts: CutSet, path: Path) -> None:
    """Writes ``cuts`` to ``path`` through a temporary file, so a crash leaves no partial file."""
    tmp = path.with_name(path.name.replace(".jsonl", ".partial.jsonl"))
    cuts.to_file(tmp)
    os.replace(tmp, path)
    logger.info("wrote %s", path)


def is_prepared(out_dir: Path, args: dict, splits: list[str]) -> bool:
    """Whether ``out_dir`` was completely prepared with exactly ``args``."""
    marker = out_dir / MARKER
    if not marker.is_file() or json.loads(marker.read_text()) != args:
        return False
    return all(cuts_path(out_dir, s).is_file() for s in splits)


def mark_prepared(out_dir: Path, args: dict) -> None:
    """Records ``args`` as those of a complete preparation (call after every manifest)."""
    atomic_write_text(out_dir / MARKER, json.dumps(args, indent=1, sort_keys=True) + "\n")
