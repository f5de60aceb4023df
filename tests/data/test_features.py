"""Tests for speechkit/data/features.py."""

import librosa
import numpy as np
import pytest
import torch

from speechkit.config import ConfigError, from_dict
from speechkit.data.features import FeatureConfig, LogMel, num_frames


def _tone(freq, n, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _whisper_reference(wave: np.ndarray, n_mels: int) -> np.ndarray:
    """Whisper's log-mel written with numpy: (T, F)."""
    n_fft, hop = 400, 160
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    n_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (T+1, n_fft/2+1)
    power = power[:-1]
    filters = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=n_mels)  # slaney
    mel = power @ filters.T
    logmel = np.log10(np.maximum(mel, 1e-10))
    logmel = np.maximum(logmel, logmel.max() - 8.0)
    return (logmel + 4.0) / 4.0


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_matches_numpy_reference(n_mels):
    waves = [_tone(440, 16000), _tone(2500, 9000, seed=1)]
    batch = torch.zeros(2, 16000)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    feats, lens = LogMel(FeatureConfig(kind="whisper", n_mels=n_mels))(
        batch, torch.tensor([16000, 9000])
    )
    assert lens.tolist() == [100, 9000 // 160]
    assert feats.shape == (2, 100, n_mels)
    for i, w in enumerate(waves):
        ref = _whisper_reference(w, n_mels)
        assert ref.shape[0] == lens[i]
        np.testing.assert_allclose(feats[i, : lens[i]].numpy(), ref, atol=2e-4)
    assert feats[1, lens[1] :].abs().sum() == 0


def test_fbank_matches_librosa_and_normalises():
    wave = _tone(1000, 12345)
    cfg = FeatureConfig(kind="fbank", n_mels=40, normalize="none")
    feats, lens = LogMel(cfg)(torch.from_numpy(wave)[None], torch.tensor([12345]))
    assert lens.tolist() == [12345 // 160 + 1] == [num_frames(12345, cfg)]
    ref = librosa.feature.melspectrogram(
        y=wave.astype(np.float64),
        sr=16000,
        n_fft=400,
        hop_length=160,
        n_mels=40,
        htk=True,
        pad_mode="reflect",
        norm=None,
    )
    np.testing.assert_allclose(
        feats[0].numpy(), np.log(np.maximum(ref, 1e-10)).T, atol=1e-3, rtol=1e-3
    )
    # The 1 kHz tone dominates the bin whose centre is nearest 1 kHz.
    centres = librosa.mel_frequencies(n_mels=42, fmax=8000, htk=True)[1:-1]
    assert int(feats[0].mean(0).argmax()) == int(np.abs(centres - 1000).argmin())

    normed, _ = LogMel(FeatureConfig(kind="fbank", n_mels=40))(
        torch.from_numpy(wave)[None], lens * 0 + 12345
    )
    torch.testing.assert_close(normed[0].mean(0), torch.zeros(40), atol=1e-4, rtol=0)
    torch.testing.assert_close(normed[0].std(0, unbiased=False), torch.ones(40), atol=1e-2, rtol=0)


def test_padding_does_not_leak():
    """An utterance's features do not depend on what it is batched with."""
    logmel = LogMel(FeatureConfig())
    short = torch.from_numpy(_tone(300, 4000))
    alone, alone_len = logmel(short[None], torch.tensor([4000]))
    batch = torch.randn(2, 8000)
    batch[0] = 0
    batch[0, :4000] = short
    both, lens = logmel(batch, torch.tensor([4000, 8000]))
    assert lens[0] == alone_len[0] == 26
    torch.testing.assert_close(both[0, :26], alone[0])
    assert both[0, 26:].abs().sum() == 0


def test_config_validation():
    with pytest.raises(ConfigError, match="n_mels 80 or 128"):
        from_dict(FeatureConfig, {"kind": "whisper", "n_mels": 64})
    with pytest.raises(ConfigError, match="kind"):
        from_dict(FeatureConfig, {"kind": "mfcc"})
