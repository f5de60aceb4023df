"""A tiny phrasebook-like corpus for the separation tests: every split has clean and noisy
cuts of a few "speakers" (harmonic tones with a syllable-rate envelope, one pitch per speaker),
written as 16 kHz FLAC with the manifests ``speechkit.data.mixtures`` reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

SR = 16000
SPLITS = {"train": 3, "dev": 2, "test_seen": 2, "test_novel": 2}  # speakers per split


def voice(f0: float, seconds: float, seed: int) -> np.ndarray:
    """A speech-like signal: 4 harmonics of ``f0`` under a 4 Hz on/off envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 5))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)) ** 2
    return (0.2 * wave * env).astype(np.float32)


def make_corpus(root: Path, per_speaker: int = 3, seconds: float = 1.5) -> Path:
    """Writes the corpus into ``root``; returns it. Each speaker has ``per_speaker`` clean cuts
    and one noisy (``music``) cut."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    for split, n_spk in SPLITS.items():
        cuts = []
        for s in range(n_spk):
            speaker = f"{split}-spk{s}"
            f0 = 110 + 40 * s + 7 * len(split)
            for i in range(per_speaker + 1):
                cid = f"{split}-{s}-{i}"
                wave = voice(f0, seconds + 0.1 * i, seed=hash(cid) % 2**31)
                event = "clean" if i < per_speaker else "music"
                path = root / "audio" / f"{cid}.flac"
                sf.write(path, wave, SR)
                rec = Recording.from_file(path, recording_id=cid)
                sup = SupervisionSegment(cid, cid, 0.0, rec.duration, channel=0, text=f"utt {i}",
                                         language="eng", speaker=speaker)  # fmt: skip
                cuts.append(MonoCut(cid, 0.0, rec.duration, 0, recording=rec, supervisions=[sup],
                                    custom={"event": event, "snr_db": None, "sentence_id": f"s{i}"}))  # fmt: skip
        CutSet.from_cuts(cuts).to_file(root / f"cuts_{split}.jsonl.gz")
    return root
