"""Small synthetic cuts and a tiny random tagger for the context tests (compute-contexts,
score-tagger): voices of a few pitches, one too short for a d-vector, one silent, one whose
audio file is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, MonoCut, Recording
from lhotse.audio import AudioSource

SR = 16000


def voice(f0: float, seconds: float, seed: int = 0) -> np.ndarray:
    """A harmonic voice-like tone with a syllable-rate envelope and a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    return (0.1 * env * tone + noise).astype(np.float32)


def _cut(cut_id: str, rec: Recording, event: str) -> MonoCut:
    return MonoCut(cut_id, 0.0, rec.duration, 0, recording=rec, custom={"event": event})


def write_corpus(root: Path) -> tuple[Path, dict[str, str]]:
    """A manifest of six cuts -> (its path, {cut id: what is special about it})."""
    root.mkdir(parents=True, exist_ok=True)
    waves = {
        "low-a": (voice(100, 2.0, 1), "music"),
        "low-b": (voice(100, 2.5, 2), "clean"),
        "high": (voice(280, 1.6, 3), "noise"),
        "short": (voice(150, 0.5, 4), "beeps"),
        "silent": (np.zeros(2 * SR, np.float32), "clean"),
    }
    cuts = []
    for name, (wave, event) in waves.items():
        path = root / f"{name}.wav"
        sf.write(path, wave, SR)
        cuts.append(_cut(name, Recording.from_file(path, recording_id=name), event))
    gone = Recording(
        id="missing",
        sources=[AudioSource(type="file", channels=[0], source=str(root / "missing.wav"))],
        sampling_rate=SR,
        num_samples=2 * SR,
        duration=2.0,
    )
    cuts.append(_cut("missing", gone, "babble"))
    manifest = root / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    return manifest, {c.id: c.custom["event"] for c in cuts}


def write_tagger(out: Path) -> Path:
    """A randomly initialised tiny tagger saved as ``speechkit train`` leaves it."""
    from speechkit.checkpoint import save_checkpoint
    from speechkit.config import to_dict
    from speechkit.models.tagger import Tagger, TaggerConfig

    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_mels=16, channels=[4, 4], dim=8, context_layers=1))
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model": model.state_dict(),
                     "config": {"model_type": "tagger", "model": to_dict(model.cfg)}},
                    out / "model_avg.pt")  # fmt: skip
    return out
