"""Shared by the tts task tests: a tiny TTS corpus of gliding tones with texts and its
vocabulary, written the way speechkit.bin.prepare_tts writes a real one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.tts.text import PhonemeVocab, phonemize

TEXTS = [
    ("eng", "Hello there."),
    ("eng", "Good morning?"),
    ("deu", "Guten Tag."),
    ("deu", "Danke schön!"),
]


def write_tone_corpus(root: Path, texts=TEXTS) -> Path:
    """One-second gliding tones (silent for the first 0.1 s), one per (language, text), said by
    spk0 / spk1 in turn: ``root/w<i>.flac``, ``root/cuts.jsonl.gz`` and ``root/vocab.json``
    (phonemes of the texts, the two speakers, the languages). Returns ``root``."""
    cuts = []
    for i, (lang, text) in enumerate(texts):
        t = np.arange(16000) / 16000
        f0 = 140 + 40 * i + 60 * t
        wave = 0.3 * np.sin(2 * math.pi * np.cumsum(f0) / 16000) * (t > 0.1)
        sf.write(root / f"w{i}.flac", wave.astype(np.float32), 16000)
        cut = Recording.from_file(root / f"w{i}.flac", recording_id=f"r{i}").to_cut()
        cut.supervisions = [SupervisionSegment(f"s{i}", f"r{i}", 0.0, cut.duration, text=text,
                                               language=lang, speaker=f"spk{i % 2}")]  # fmt: skip
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(root / "cuts.jsonl.gz")
    vocab = PhonemeVocab.build(phonemize(text, lang) for lang, text in texts)
    languages = sorted({lang for lang, _ in texts})
    (root / "vocab.json").write_text(json.dumps(
        {"phonemes": vocab.phonemes, "speakers": ["spk0", "spk1"], "languages": languages}))  # fmt: skip
    return root
