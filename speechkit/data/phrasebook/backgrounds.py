"""Acoustic backgrounds for the phrasebook corpus, and mixing them under speech at a given SNR.

Event classes (``EVENTS``): ``clean`` (no background), ``noise`` (stationary white, pink or brown
noise), ``babble`` (3-6 other utterances summed), ``beeps`` (short tones at random times) and
``music`` (chords of harmonic tones that change slowly). Every generator takes a
``numpy.random.Generator``, so a background is a pure function of the seed.

    bg = make_background("music", num_samples, rng)       # float32 (num_samples,), unit RMS
    mix, snr = mix_at_snr(speech, bg, snr_db=10.0)        # snr: the exact SNR of the mix, in dB

All signals are float32 mono at ``sr`` Hz (16 kHz by default); lengths are in samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EVENTS = ("clean", "noise", "babble", "beeps", "music")
_EPS = 1e-10


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / max(float(np.sqrt(np.mean(x**2))), _EPS)).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    """Mean power of ``x`` in dB (10 log10 of the mean square)."""
    return 10.0 * np.log10(max(float(np.mean(np.asarray(x, np.float64) ** 2)), _EPS))


def make_noise(num_samples: int, rng: np.random.Generator, colour: str | None = None):
    """Stationary noise with a 1/f^k power spectrum: white (k=0), pink (k=1) or brown (k=2)."""
    colour = colour or str(rng.choice(["white", "pink", "brown"]))
    k = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spec = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.arange(len(spec), dtype=np.float64)
    freqs[0] = 1.0  # the DC bin would divide by zero; it is tiny after shaping anyway
    return _unit_rms(np.fft.irfft(spec / freqs ** (k / 2), n=num_samples))


def make_beeps(num_samples: int, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Sine beeps (400-2500 Hz, 80-400 ms, faded in and out) at random times, about 2 a second.

    The gaps between beeps are silent: the SNR is still defined over the whole utterance.
    """
    out = np.zeros(num_samples, np.float32)
    count = max(1, rng.poisson(2.0 * num_samples / sr))
    for _ in range(count):
        length = min(num_samples, int(rng.uniform(0.08, 0.4) * sr))
        start = int(rng.integers(0, num_samples - length + 1))
        t = np.arange(length) / sr
        tone = np.sin(2 * np.pi * rng.uniform(400, 2500) * t)
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps avoid clicks
        out[start : start + length] += (tone * fade * rng.uniform(0.5, 1.0)).astype(np.float32)
    return _unit_rms(out)


def make_music(num_samples: int, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Chords of 3 harmonic notes (4 partials each), a new chord every 0.5-1.2 s, crossfaded."""
    out = np.zeros(num_samples, np.float64)
    pos = 0
    root = int(rng.integers(45, 58))  # MIDI note of the key, around 110-230 Hz
    while pos < num_samples:
        length = min(num_samples - pos, int(rng.uniform(0.5, 1.2) * sr))
        t = np.arange(length) / sr
        chord_root = root + int(rng.choice([0, 3, 5, 7, 8, 10]))
        chord = np.zeros(length)
        for interval in (0, int(rng.choice([3, 4])), 7):
            f0 = 440.0 * 2 ** ((chord_root + interval - 69) / 12)
            for h in range(1, 5):
                chord += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)  # 50 ms crossfade
        out[pos : pos + length] += chord * envelope
        pos += length
    return _unit_rms(out)


def make_babble(num_samples: int, sources: Sequence[np.ndarray], rng: np.random.Generator):
    """Sum of ``sources`` (other utterances), each at unit RMS, looped and randomly offset."""
    if not sources:
        raise ValueError("babble needs at least one source utterance")
    out = np.zeros(num_samples, np.float32)
    for src in sources:
        src = _unit_rms(src)
        reps = int(np.ceil((num_samples + len(src)) / len(src)))
        offset = int(rng.integers(0, len(src)))
        out += np.tile(src, reps)[offset : offset + num_samples]
    return _unit_rms(out)


def make_background(event: str, num_samples: int, rng: np.random.Generator, sources=(), sr=16000):
    """Background of class ``event`` (not ``clean``): float32 (num_samples,), unit RMS."""
    if event == "noise":
        return make_noise(num_samples, rng)
    if event == "beeps":
        return make_beeps(num_samples, rng, sr)
    if event == "music":
        return make_music(num_samples, rng, sr)
    if event == "babble":
        return make_babble(num_samples, sources, rng)
    raise ValueError(f"unknown background event {event!r}; known: {list(EVENTS[1:])}")


def mix_at_snr(speech: np.ndarray, background: np.ndarray, snr_db: float, peak: float = 0.95):
    """Adds ``background`` under ``speech`` so that 10 log10(P_speech / P_background) = snr_db.

    Both are float (samples,) of the same length; powers are means over the whole utterance.
    If the mix would clip, speech and background are scaled down together, which keeps the SNR.
    Returns (mixture float32 (samples,), achieved SNR in dB).
    """
    if len(speech) != len(background):
        raise ValueError(f"speech has {len(speech)} samples but background {len(background)}")
    speech = np.asarray(speech, np.float64)
    background = np.asarray(background, np.float64)
    gain = 10 ** ((power_db(speech) - snr_db - power_db(background)) / 20)
    scaled = background * gain
    mix = speech + scaled
    top = float(np.max(np.abs(mix)))
    scale = peak / top if top > peak else 1.0
    achieved = power_db(speech * scale) - power_db(scaled * scale)
    return (mix * scale).astype(np.float32), float(achieved)
