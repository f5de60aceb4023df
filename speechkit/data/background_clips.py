"""Weakly labelled background clips without speech: the AudioSet-like part of a USS corpus.

Universal source separation from weak labels (USS) learns a class from anchor segments where the
class is present and the other classes are absent. Every phrasebook clip holds speech, so a
background class never appears alone there, and the weak arm of ``task: separation`` learnt its
backgrounds from anchors that were mostly speech (``egs/phrasebook/enh1/RESULTS.md``, 2026-12-06).
AudioSet, USS's corpus, is full of clips with music, noise or beeps and no speech. This module
writes such clips for the corpus's background classes, with the corpus's own generators
(``speechkit.data.phrasebook.backgrounds``; babble from the training split's clean talkers) and a
seed of their own, so no clip equals a background of a mixture.

A clip carries its clip-level label and nothing else: no source, no supervision, no timing::

    audio/bg-<class>-<index>.flac   16 kHz mono, 16-bit
    cuts_train.jsonl.gz             MonoCut, custom {"event": <class>, "clip_labels": [<class>]}
    clip_args.json                  the arguments; written last, marks a complete build

    make_background_clips(BackgroundClipConfig("data/phrasebook", "data/backgrounds"))
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from speechkit.config import ConfigError
from speechkit.data.mixtures import BACKGROUNDS, SAMPLE_RATE, _clean_sources
from speechkit.data.phrasebook.backgrounds import make_background

__all__ = ["BackgroundClipConfig", "make_background_clips"]

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass
class BackgroundClipConfig:
    """per_class: clips of each class in ``classes``; seconds: (min, max) clip length, drawn
    uniformly; babble_talkers: (min, max) clean training utterances summed into a babble clip;
    level_db: (min, max) RMS level of a clip in dBFS."""

    corpus_dir: str
    out_dir: str
    classes: list[str] = field(default_factory=lambda: list(BACKGROUNDS))
    per_class: int = 100
    seconds: tuple[float, float] = (1.5, 3.0)
    babble_talkers: tuple[int, int] = (3, 6)
    level_db: tuple[float, float] = (-35.0, -20.0)
    seed: int = 0

    def __post_init__(self) -> None:
        bad = sorted(set(self.classes) - set(BACKGROUNDS))
        if bad or not self.classes:
            raise ConfigError(f"classes: choose from {list(BACKGROUNDS)}, got {self.classes}")
        if self.per_class < 1:
            raise ConfigError(f"per_class must be >= 1, got {self.per_class}")
        if not 0.1 <= self.seconds[0] <= self.seconds[1]:
            raise ConfigError(f"seconds must be 0.1 <= min <= max, got {self.seconds}")
        if not 1 <= self.babble_talkers[0] <= self.babble_talkers[1]:
            raise ConfigError(f"babble_talkers must be 1 <= min <= max, got {self.babble_talkers}")
        if not self.level_db[0] <= self.level_db[1] < 0:
            raise ConfigError(f"level_db must be min <= max < 0 dBFS, got {self.level_db}")

    def build_args(self) -> dict:
        args = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        del args["out_dir"]
        args["corpus_dir"] = str(Path(self.corpus_dir).resolve())
        return {"format_version": FORMAT_VERSION, **args}


def make_background_clips(cfg: BackgroundClipConfig) -> dict[str, int]:
    """Writes ``cfg.per_class`` clips per class into ``cfg.out_dir`` (skips a complete build with
    the same arguments). Returns the number of clips per class."""
    from lhotse import CutSet, MonoCut, Recording

    out = Path(cfg.out_dir)
    marker = out / "clip_args.json"
    manifest = out / "cuts_train.jsonl.gz"
    if (
        marker.is_file()
        and manifest.is_file()
        and json.loads(marker.read_text()) == cfg.build_args()
    ):
        logger.info("background clips in %s are complete for these arguments; skipping", out)
        return {c: cfg.per_class for c in cfg.classes}
    talkers = [s.wave for s in _clean_sources(Path(cfg.corpus_dir), "train")]
    if "babble" in cfg.classes and not talkers:
        raise ValueError(f"babble clips need clean training utterances in {cfg.corpus_dir}")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"background-clips/{cfg.seed}")
    cuts = []
    for name in cfg.classes:
        for i in range(cfg.per_class):
            clip_id = f"bg-{name}-{i:04d}"
            n = int(rng.uniform(*cfg.seconds) * SAMPLE_RATE)
            # A seed space of its own (a leading 1000 + class): never a mixture's background.
            nprng = np.random.default_rng([1000 + BACKGROUNDS.index(name), cfg.seed, i])
            sources = rng.sample(talkers, min(len(talkers), rng.randint(*cfg.babble_talkers)))
            wave = make_background(name, n, nprng, sources if name == "babble" else (),
                                   SAMPLE_RATE)  # fmt: skip
            wave = wave * 10 ** (rng.uniform(*cfg.level_db) / 20)  # unit RMS -> the level
            path = out / "audio" / f"{clip_id}.flac"
            sf.write(path, np.clip(wave, -1.0, 1.0), SAMPLE_RATE)
            rec = Recording.from_file(path, recording_id=clip_id)
            cuts.append(MonoCut(clip_id, 0.0, rec.duration, 0, recording=rec,
                                custom={"event": name, "clip_labels": [name]}))  # fmt: skip
    CutSet.from_cuts(cuts).to_file(manifest)
    marker.write_text(json.dumps(cfg.build_args()))
    return {c: cfg.per_class for c in cfg.classes}
