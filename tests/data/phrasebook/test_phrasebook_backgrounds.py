"""Tests for speechkit/data/phrasebook/backgrounds.py: generators and SNR-exact mixing."""

from __future__ import annotations

import numpy as np
import pytest

from speechkit.data.phrasebook.backgrounds import (
    EVENTS,
    make_background,
    make_noise,
    mix_at_snr,
    power_db,
)

SR = 16000


def _tone(n: int, freq: float = 220.0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


@pytest.mark.parametrize("snr_db", [5.0, 12.5, 20.0])
@pytest.mark.parametrize("event", ["noise", "beeps", "music", "babble"])
def test_mix_snr_recomputed_from_parts(event, snr_db):
    """SNR recomputed as 10 log10(P_speech / P_(mix - speech)) matches the request."""
    rng = np.random.default_rng(0)
    speech = _tone(SR * 2)
    sources = [_tone(SR, 150.0 + 40 * i) for i in range(4)]
    bg = make_background(event, len(speech), rng, sources, SR)
    mix, achieved = mix_at_snr(speech, bg, snr_db)
    assert mix.dtype == np.float32 and mix.shape == speech.shape
    # No clipping here (quiet speech), so the speech in the mix is unscaled.
    residual = mix.astype(np.float64) - speech
    recomputed = power_db(speech) - power_db(residual)
    assert recomputed == pytest.approx(snr_db, abs=0.05)
    assert achieved == pytest.approx(snr_db, abs=0.05)


def test_mix_rescales_to_avoid_clipping_but_keeps_snr():
    speech = _tone(SR, amp=0.9)
    bg = make_noise(SR, np.random.default_rng(1), "white")
    mix, achieved = mix_at_snr(speech, bg, 0.0)
    assert np.max(np.abs(mix)) <= 0.95 + 1e-6
    scale = float(np.dot(mix, speech) / np.dot(speech, speech))  # noise is ~orthogonal to speech
    residual = mix - scale * speech
    assert power_db(scale * speech) - power_db(residual) == pytest.approx(0.0, abs=0.3)
    assert achieved == pytest.approx(0.0, abs=1e-6)


def test_mix_rejects_length_mismatch():
    with pytest.raises(ValueError, match="samples"):
        mix_at_snr(np.zeros(10), np.zeros(11), 5.0)


@pytest.mark.parametrize("event", [e for e in EVENTS if e != "clean"])
def test_backgrounds_are_deterministic_unit_rms_and_nonconstant(event):
    sources = [_tone(SR // 2, 300.0), _tone(SR, 410.0), _tone(SR, 505.0)]
    a = make_background(event, 12345, np.random.default_rng(7), sources, SR)
    b = make_background(event, 12345, np.random.default_rng(7), sources, SR)
    c = make_background(event, 12345, np.random.default_rng(8), sources, SR)
    assert a.shape == (12345,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)


def test_noise_colours_have_the_expected_spectral_tilt():
    """Brown noise has far more low- than high-frequency energy; white noise is flat."""
    rng = np.random.default_rng(3)

    def low_high_ratio(x):
        spec = np.abs(np.fft.rfft(x)) ** 2
        q = len(spec) // 4
        return spec[1:q].sum() / spec[-q:].sum()

    assert low_high_ratio(make_noise(SR, rng, "white")) == pytest.approx(1.0, rel=0.2)
    assert low_high_ratio(make_noise(SR, rng, "pink")) > 3
    assert low_high_ratio(make_noise(SR, rng, "brown")) > 100


def test_beeps_leave_silent_gaps_and_unknown_event_errors():
    beeps = make_background("beeps", SR * 3, np.random.default_rng(2))
    assert np.mean(np.abs(beeps) < 1e-6) > 0.2  # gaps between beeps are silent
    assert beeps.shape == (SR * 3,)
    with pytest.raises(ValueError, match="unknown background event 'rain'"):
        make_background("rain", 100, np.random.default_rng(0))
    with pytest.raises(ValueError, match="babble needs"):
        make_background("babble", 100, np.random.default_rng(0), [])
