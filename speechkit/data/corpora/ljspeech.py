"""LJSpeech 1.1: one English speaker, 13,100 clips (24 h, 22.05 kHz WAV), prepared with lhotse.

On disk (what ``lhotse download ljspeech`` extracts)::

    <data_root>/LJSpeech-1.1/metadata.csv      "<id>|<text>|<normalised text>" per clip
    <data_root>/LJSpeech-1.1/wavs/<id>.wav     e.g. LJ001-0001.wav

``data_root`` may also be the ``LJSpeech-1.1`` directory itself. LJSpeech has no official split;
as ESPnet's recipe does, the last ``test_size`` clips (by id) are the test set, the
``dev_size`` before them the dev set, the rest the training set.

:func:`prepare_ljspeech` checks the corpus (no ``metadata.csv``, malformed lines, or clips
without their WAV are a :class:`CorpusError` naming them), runs ``lhotse.recipes.
prepare_ljspeech`` and writes ``out_dir/cuts_{train,dev,test}.jsonl.gz``: the cut id is the clip
id, ``language`` is ``eng``, the speaker ``ljspeech``, and the text is the *normalised* one
(numbers and abbreviations spelled out, what a TTS model reads and a recogniser's output is
scored against); the original is kept in ``supervision.custom["original_text"]``. The audio keeps
its 22.05 kHz (speechkit's data loader resamples where a model needs 16 kHz).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from lhotse import CutSet
from lhotse.utils import fastcopy

from speechkit.config import ConfigError
from speechkit.data.corpora.common import (
    CorpusError,
    cuts_path,
    is_prepared,
    mark_prepared,
    write_cuts,
)

__all__ = ["LJSpeechConfig", "check_ljspeech", "find_ljspeech", "prepare_ljspeech"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "dev", "test")
DOWNLOAD_HINT = (
    "download it with `--download true` (lhotse's download_ljspeech: LJSpeech-1.1.tar.bz2 from "
    "https://keithito.com/LJ-Speech-Dataset, extracted into <data_root>/LJSpeech-1.1)"
)


@dataclasses.dataclass
class LJSpeechConfig:
    """What to prepare: ``data_root`` holds ``LJSpeech-1.1/`` (or is it); the last
    ``test_size`` clips are the test set and the ``dev_size`` before them the dev set."""

    data_root: str
    out_dir: str
    dev_size: int = 250
    test_size: int = 250
    download: bool = False

    def __post_init__(self) -> None:
        if self.dev_size < 1 or self.test_size < 1:
            raise ConfigError(
                f"dev_size and test_size must be >= 1, got {self.dev_size}, {self.test_size}"
            )

    def build_args(self) -> dict:
        return {
            "corpus": "ljspeech",
            "format_version": FORMAT_VERSION,
            "dev_size": self.dev_size,
            "test_size": self.test_size,
        }


def find_ljspeech(data_root: str | Path) -> Path:
    """``data_root/LJSpeech-1.1``, or ``data_root`` if it holds ``metadata.csv``."""
    root = Path(data_root)
    for candidate in (root / "LJSpeech-1.1", root):
        if (candidate / "metadata.csv").is_file() or (candidate / "wavs").is_dir():
            return candidate
    what = "does not exist" if not root.exists() else "holds no LJSpeech-1.1/ directory"
    raise CorpusError(
        f"LJSpeech not found: {root} {what} (expected {root}/LJSpeech-1.1/metadata.csv and "
        f"wavs/); {DOWNLOAD_HINT}"
    )


def check_ljspeech(corpus: Path) -> int:
    """The number of clips; a :class:`CorpusError` for a missing ``metadata.csv``, malformed
    lines (not ``id|text|normalised text``) or clips whose WAV file is absent."""
    metadata = corpus / "metadata.csv"
    if not metadata.is_file():
        raise CorpusError(
            f"LJSpeech at {corpus} is incomplete: {metadata} is missing\n{DOWNLOAD_HINT}"
        )
    problems, missing, n = [], [], 0
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 3:
            problems.append(
                f"metadata.csv:{number}: {len(fields)} fields, expected id|text|normalised"
            )
            continue
        n += 1
        if not (corpus / "wavs" / f"{fields[0]}.wav").is_file():
            missing.append(corpus / "wavs" / f"{fields[0]}.wav")
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        problems.append(f"{len(missing)} of {n} clips have no WAV file (e.g. {shown})")
    if problems:
        raise CorpusError(
            f"LJSpeech at {corpus} is incomplete:\n  - " + "\n  - ".join(problems[:10])
            + f"\n{DOWNLOAD_HINT}"
        )  # fmt: skip
    return n


def normalise_cut(cut):
    """A cut of lhotse's LJSpeech recipe in speechkit's conventions (module docstring)."""
    (sup,) = cut.supervisions
    custom = dict(sup.custom or {})
    normalised = " ".join(custom.pop("normalized_text", sup.text).split())
    custom["original_text"] = sup.text
    sup = fastcopy(sup, text=normalised, language="eng", speaker="ljspeech", custom=custom)
    return fastcopy(cut, id=sup.id, supervisions=[sup], custom={"event": "clean"})


def prepare_ljspeech(cfg: LJSpeechConfig) -> dict[str, Path]:
    """Checks, prepares with lhotse, normalises and splits; returns ``{split: manifest}``.
    Does nothing when ``out_dir`` is already complete with these arguments."""
    from lhotse.recipes import download_ljspeech
    from lhotse.recipes import prepare_ljspeech as lhotse_prepare

    out_dir = Path(cfg.out_dir)
    outputs = {split: cuts_path(out_dir, split) for split in SPLITS}
    if is_prepared(out_dir, cfg.build_args(), list(SPLITS)):
        logger.info("skip: %s already holds LJSpeech", out_dir)
        return outputs
    if cfg.download:
        download_ljspeech(target_dir=cfg.data_root)
    corpus = find_ljspeech(cfg.data_root)
    n = check_ljspeech(corpus)
    if n <= cfg.dev_size + cfg.test_size:
        raise ConfigError(
            f"LJSpeech has {n} clips: too few for {cfg.dev_size} dev + {cfg.test_size} test"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = lhotse_prepare(corpus, output_dir=out_dir / "lhotse")
    cuts = sorted(
        (normalise_cut(c) for c in CutSet.from_manifests(**manifests)), key=lambda c: c.id
    )
    n_train = len(cuts) - cfg.dev_size - cfg.test_size
    parts = {
        "train": cuts[:n_train],
        "dev": cuts[n_train : n_train + cfg.dev_size],
        "test": cuts[n_train + cfg.dev_size :],
    }
    for split, part in parts.items():
        hours = sum(c.duration for c in part) / 3600
        logger.info("%s: %d clips, %.1f h", split, len(part), hours)
        write_cuts(CutSet.from_cuts(part), outputs[split])
    mark_prepared(out_dir, cfg.build_args())
    return outputs
