"""Speakers for the phrasebook corpus: espeak-ng voices, synthesised to 16 kHz mono.

A speaker is (language, espeak voice variant, pitch, rate), with a stable id such as
``eng-m3-p55-s160``. Each language gets 16 speakers with distinct variants, shuffled by the seed
and split 12 train / 2 dev / 2 test, so test speakers never read a training utterance.

    speakers = make_speakers(["eng", "deu"], seed=0)   # {"train": [..], "dev": [..], "test": [..]}
    wave = synthesize("Where is the museum?", speakers["train"][0])   # float32 (samples,), 16 kHz
"""

from __future__ import annotations

import io
import logging
import os
import random
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ESPEAK_VOICE = {"eng": "en-us", "deu": "de", "spa": "es", "fra": "fr"}
# Variant files from espeak-ng-data/voices/!v; each changes formants, breathiness, etc.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "f1", "f2", "f3", "f4", "f5", "max", "paul", "norbert",
)  # fmt: skip
SPLIT_SIZES = {"train": 12, "dev": 2, "test": 2}
PITCHES = tuple(range(35, 75, 5))  # espeak -p, 0..99, 50 is the default
RATES = tuple(range(140, 190, 5))  # espeak -s, words per minute


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice. ``speaker_id`` is globally unique and stable across runs."""

    language: str
    variant: str
    pitch: int
    rate: int

    @property
    def speaker_id(self) -> str:
        return f"{self.language}-{self.variant}-p{self.pitch}-s{self.rate}"

    @property
    def espeak_voice(self) -> str:
        return f"{ESPEAK_VOICE[self.language]}+{self.variant}"


def make_speakers(languages: list[str], seed: int = 0) -> dict[str, list[Speaker]]:
    """Speakers per split (``train``/``dev``/``test``), ``SPLIT_SIZES`` of each per language.

    Within a language every speaker has its own variant, so a test voice is not a training voice
    with a different pitch. The assignment depends only on ``seed`` and the language.
    """
    out: dict[str, list[Speaker]] = {split: [] for split in SPLIT_SIZES}
    for lang in languages:
        if lang not in ESPEAK_VOICE:
            raise ValueError(
                f"no espeak-ng voice for language {lang!r}; known: {list(ESPEAK_VOICE)}"
            )
        rng = random.Random(f"phrasebook-speakers/{seed}/{lang}")
        variants = list(VARIANTS)
        rng.shuffle(variants)
        i = 0
        for split, count in SPLIT_SIZES.items():
            for variant in variants[i : i + count]:
                out[split].append(Speaker(lang, variant, rng.choice(PITCHES), rng.choice(RATES)))
            i += count
    return out


def find_espeak() -> str:
    """Path of the ``espeak-ng`` binary (``$ESPEAK_NG`` wins), or an error saying what to do."""
    path = os.environ.get("ESPEAK_NG") or shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng is not installed (no 'espeak-ng' on PATH and $ESPEAK_NG unset); the "
            "phrasebook corpus needs it to synthesise speech. Run tools/setup.sh, or install it "
            "with 'apt-get install espeak-ng'."
        )
    return path


def trim_silence(wave: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.08):
    """Cuts leading/trailing frames quieter than ``top_db`` below the loudest 20 ms frame.

    Keeps ``margin_s`` seconds on each side so onsets and final consonants stay intact.
    wave: float (samples,). Returns a view of ``wave``.
    """
    frame = int(0.02 * sr)
    n = len(wave) // frame
    if n == 0:
        return wave
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-top_db / 20))
    margin = int(margin_s * sr)
    start = max(0, loud[0] * frame - margin)
    end = min(len(wave), (loud[-1] + 1) * frame + margin)
    return wave[start:end]


def synthesize(text: str, speaker: Speaker, espeak: str | None = None) -> np.ndarray:
    """Speaks ``text`` with ``speaker``: float32 (samples,) at 16 kHz, silence trimmed."""
    cmd = [
        espeak or find_espeak(),
        "-v",
        speaker.espeak_voice,
        "-p",
        str(speaker.pitch),
        "-s",
        str(speaker.rate),
        "--stdout",
        text,
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise RuntimeError(
            f"espeak-ng failed for speaker {speaker.speaker_id} on {text!r}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    # --stdout writes a WAV header whose length fields are placeholders, so read the raw PCM
    # after the 44-byte header instead of trusting them.
    with sf.SoundFile(io.BytesIO(proc.stdout)) as f:
        sr = f.samplerate
    pcm = np.frombuffer(proc.stdout[44 : 44 + (len(proc.stdout) - 44) // 2 * 2], dtype="<i2")
    wave = pcm.astype(np.float32) / 32768.0
    wave = soxr.resample(wave, sr, SAMPLE_RATE).astype(np.float32)
    return np.ascontiguousarray(trim_silence(wave, SAMPLE_RATE))
