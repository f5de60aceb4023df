"""speechkit.data.tts.frame_pitch: F0 of a periodic signal, and no voicing for loud noise."""

from __future__ import annotations

import numpy as np
import pytest

from speechkit.data.tts import PITCH_REFERENCE_HZ, TTSDataConfig, frame_pitch, periodicity
from speechkit.tts.mel import TTSMelConfig, num_frames

SR = 16000


def harmonic(f0: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))).astype(np.float32)


def test_a_periodic_signal_is_voiced_at_its_f0():
    mel = TTSMelConfig()
    wave = harmonic(150.0, 1.0)
    pitch, voiced = frame_pitch(wave, mel, TTSDataConfig())
    assert pitch.shape == voiced.shape == (num_frames(len(wave), mel),)
    assert voiced[5:-5].all()
    hz = PITCH_REFERENCE_HZ * 2.0 ** pitch[voiced]
    assert np.median(np.abs(1200 * np.log2(hz / 150.0))) < 20  # cents


def test_loud_noise_is_unvoiced_with_the_periodicity_test_and_was_not_without():
    mel = TTSMelConfig()
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal(SR)).astype(np.float32)  # a long fricative
    wave = np.concatenate([harmonic(150.0, 0.5), noise])
    pitch, voiced = frame_pitch(wave, mel, TTSDataConfig())
    half = num_frames(SR // 2, mel)
    assert voiced[5 : half - 5].mean() > 0.9
    assert voiced[half + 5 :].mean() < 0.1 and not pitch[half + 5 :][~voiced[half + 5 :]].any()
    _, old = frame_pitch(wave, mel, TTSDataConfig(min_periodicity=0.0))
    assert old[half + 5 :].mean() > 0.5  # YIN alone calls most noise frames voiced


@pytest.mark.parametrize("lag", [40, 107])
def test_periodicity_is_one_for_a_signal_that_repeats_at_the_lag(lag):
    rng = np.random.default_rng(1)
    period = rng.standard_normal(lag).astype(np.float32)
    wave = np.tile(period, 4096 // lag + 1)[:4096]
    r = periodicity(wave, np.full(9, SR / lag), SR, 1024, 512)
    assert r.shape == (9,)
    assert np.allclose(r[1:-1], 1.0, atol=1e-4)  # (edge frames see the zero padding)
