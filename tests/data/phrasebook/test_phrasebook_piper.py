"""Tests for the Piper English speakers of the phrasebook corpus (voices.py and prepare.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import speechkit.data.phrasebook.prepare as prepare_mod
from speechkit.data.phrasebook.grammar import LANGUAGES, get_sentence
from speechkit.data.phrasebook.prepare import (
    SPLITS,
    PrepareConfig,
    is_complete,
    manifest_path,
    prepare_phrasebook,
)
from speechkit.data.phrasebook.voices import (
    PIPER_SPEAKERS,
    SAMPLE_RATE,
    PiperSpeaker,
    load_piper_voice,
    make_speakers,
    piper_missing,
    synthesize,
)

needs_piper = pytest.mark.skipif(
    piper_missing() is not None, reason=f"Piper not installed: {piper_missing()}"
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)"
)
TEXT = "Where is the train station?"


def _centroid_hz(wave: np.ndarray) -> float:
    """Power-weighted mean frequency of ``wave`` (16 kHz), in Hz."""
    power = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / SAMPLE_RATE)
    return float((power * freqs).sum() / power.sum())


def test_piper_speakers_are_english_only_and_one_is_held_out_for_test():
    plain = make_speakers(["eng", "deu"], seed=0)
    with_piper = make_speakers(["eng", "deu"], seed=0, piper=True)
    for split, speakers in with_piper.items():
        piper = [s for s in speakers if isinstance(s, PiperSpeaker)]
        assert piper == list(PIPER_SPEAKERS[split])
        assert [s for s in speakers if not isinstance(s, PiperSpeaker)] == plain[split]
        assert all(s.language == "eng" for s in piper)
    ids = {split: {s.speaker_id for s in spk} for split, spk in with_piper.items()}
    assert len(ids["train"]) == len(with_piper["train"])  # ids are unique
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["dev"]
    assert any(isinstance(s, PiperSpeaker) for s in with_piper["test"])
    assert all(s.speaker_id.startswith("eng-piper-joe-") for s in PIPER_SPEAKERS["test"])
    assert not any(
        isinstance(s, PiperSpeaker)
        for spk in make_speakers(["deu"], piper=True).values()
        for s in spk
    )


def test_piper_mode_resolution_and_missing_install(monkeypatch):
    monkeypatch.setattr(prepare_mod, "piper_missing", lambda: "not installed; pip install it")
    assert not PrepareConfig("x", languages=["eng"], piper="auto").uses_piper()
    assert PrepareConfig("x", languages=["eng"], piper="auto").build_args()["piper"] is False
    with pytest.raises(RuntimeError, match="--piper on, but not installed; pip install"):
        PrepareConfig("x", languages=["eng"], piper="on").uses_piper()
    monkeypatch.setattr(prepare_mod, "piper_missing", lambda: None)
    assert PrepareConfig("x", languages=["eng"]).uses_piper()
    assert not PrepareConfig("x", languages=["eng"], piper="off").uses_piper()
    assert not PrepareConfig("x", languages=["deu"], piper="on").uses_piper()
    with pytest.raises(prepare_mod.ConfigError, match="piper"):
        PrepareConfig("x", piper="yes")


def test_cli_on_without_piper_fails_with_a_clear_message(monkeypatch, tmp_path, caplog):
    from speechkit.bin.prepare_phrasebook import main

    monkeypatch.setattr(prepare_mod, "piper_missing", lambda: "Piper is missing; pip install X")
    assert main(["--out", str(tmp_path / "pb"), "--languages", "eng", "--piper", "on"]) == 1
    assert "--piper on, but Piper is missing; pip install X" in caplog.text


@needs_piper
def test_piper_synthesis_is_16k_speech_of_plausible_length_and_deterministic():
    base = PIPER_SPEAKERS["train"][0]
    wave = synthesize(TEXT, base)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.8 < len(wave) / SAMPLE_RATE < 4.0
    assert 0.5 < np.abs(wave).max() <= 1.0
    assert np.sqrt(np.mean(wave**2)) > 0.02  # speech, not a click in silence
    np.testing.assert_array_equal(wave, synthesize(TEXT, base))
    assert load_piper_voice() is load_piper_voice()  # loaded once per process

    slow = synthesize(TEXT, PiperSpeaker("eng", 1.3, 1.0))
    assert 1.15 < len(slow) / len(wave) < 1.45
    # A pitch factor moves the spectrum up by that factor; length_scale roughly undoes the
    # speed-up that resampling alone would give (which would be 1 / 1.15 = 0.87).
    high = synthesize(TEXT, PiperSpeaker("eng", 1.0, 1.15))
    assert 0.88 < len(high) / len(wave) < 1.1
    assert 1.07 < _centroid_hz(high) / _centroid_hz(wave) < 1.25


@needs_piper
@needs_espeak
def test_tiny_english_build_has_piper_speakers_with_every_context_field(tmp_path):
    from lhotse import CutSet

    cfg = PrepareConfig(out_dir=str(tmp_path), hours=0.04, seed=1, num_jobs=2, languages=["eng"])
    prepare_phrasebook(cfg)
    args = json.loads((tmp_path / "prepare_args.json").read_text())
    assert args["piper"] is True and is_complete(tmp_path, cfg)
    assert not is_complete(tmp_path, PrepareConfig(str(tmp_path), 0.04, seed=1, piper="off"))

    piper_ids = {split: {s.speaker_id for s in spk} for split, spk in PIPER_SPEAKERS.items()}
    seen = {}
    for split in SPLITS:
        cuts = CutSet.from_file(manifest_path(tmp_path, "cuts", split))
        seen[split] = {c.supervisions[0].speaker for c in cuts} & set().union(*piper_ids.values())
        for cut in cuts:
            sup = cut.supervisions[0]
            sentence = get_sentence(cut.custom["sentence_id"])
            assert sup.language == "eng" and sup.text == sentence.texts["eng"]
            assert sup.custom["translations"] == {
                lang: sentence.texts[lang] for lang in LANGUAGES if lang != "eng"
            }
            assert cut.custom["event"] in ("clean", "noise", "babble", "beeps", "music")
            assert (cut.custom["snr_db"] is None) == (cut.custom["event"] == "clean")
            if sup.speaker in seen[split]:
                audio = cut.load_audio()
                assert cut.sampling_rate == SAMPLE_RATE and 0.5 < cut.duration < 6.0
                assert np.abs(audio).max() > 0.05
    assert seen["train"] and seen["train"] <= piper_ids["train"]
    assert seen["test_seen"] | seen["test_novel"] == piper_ids["test"]
    assert not seen["dev"]
