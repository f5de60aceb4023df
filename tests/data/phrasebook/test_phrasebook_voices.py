"""Tests for speechkit/data/phrasebook/voices.py: speaker sets, synthesis, trimming."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from speechkit.data.phrasebook.voices import (
    SAMPLE_RATE,
    SPLIT_SIZES,
    find_espeak,
    make_speakers,
    synthesize,
    trim_silence,
)

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)"
)


def test_speaker_splits_are_disjoint_sized_and_stable():
    langs = ["eng", "deu", "spa", "fra"]
    speakers = make_speakers(langs, seed=0)
    ids = {split: [s.speaker_id for s in spk] for split, spk in speakers.items()}
    for split, size in SPLIT_SIZES.items():
        assert len(ids[split]) == size * len(langs)
        assert len(set(ids[split])) == len(ids[split])
    assert not set(ids["train"]) & set(ids["test"])
    assert not set(ids["train"]) & set(ids["dev"])
    assert not set(ids["dev"]) & set(ids["test"])
    for lang in langs:  # a test voice is not a training variant at another pitch
        variants = {
            split: {s.variant for s in spk if s.language == lang} for split, spk in speakers.items()
        }
        assert not variants["train"] & variants["test"]
    assert make_speakers(langs, seed=0) == speakers
    assert make_speakers(["eng"], seed=0)["test"] == [
        s for s in speakers["test"] if s.language == "eng"
    ]
    s = speakers["train"][0]
    assert s.speaker_id == f"{s.language}-{s.variant}-p{s.pitch}-s{s.rate}"


def test_unknown_language_is_rejected():
    with pytest.raises(ValueError, match="'ita'"):
        make_speakers(["ita"])


def test_missing_espeak_says_to_run_setup(monkeypatch):
    monkeypatch.delenv("ESPEAK_NG", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"tools/setup\.sh"):
        find_espeak()


def test_trim_silence_keeps_the_loud_part_with_margin():
    sr = 16000
    wave = np.zeros(sr * 2, np.float32)
    wave[sr // 2 : sr] = 0.5 * np.sin(np.arange(sr // 2) * 0.1)
    out = trim_silence(wave, sr, margin_s=0.05)
    assert 0.5 * sr <= len(out) <= 0.5 * sr + 2 * (0.05 + 0.02) * sr
    assert np.abs(out).max() == pytest.approx(0.5, abs=1e-3)


@needs_espeak
def test_synthesize_gives_16k_float_speech_of_plausible_length():
    speakers = make_speakers(["eng", "deu"], seed=0)["train"]
    eng = next(s for s in speakers if s.language == "eng")
    wave = synthesize("Where is the train station?", eng)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.8 < len(wave) / SAMPLE_RATE < 4.0
    assert 0.05 < np.abs(wave).max() <= 1.0
    # Trimmed: the first and last 50 ms are not long stretches of digital silence.
    assert len(wave) < len(synthesize("Where is the train station? " * 2, eng))
    other = next(s for s in speakers if s.language == "eng" and s.variant != eng.variant)
    assert not np.array_equal(wave[:1000], synthesize("Where is the train station?", other)[:1000])
    np.testing.assert_array_equal(wave, synthesize("Where is the train station?", eng))
