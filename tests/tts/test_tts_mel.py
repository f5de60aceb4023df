import math

import pytest
import torch

from speechkit.tts.mel import LogMelSpectrogram, TTSMelConfig, mel_spectrogram, num_frames


def test_shape_and_frames_follow_hop():
    cfg = TTSMelConfig()
    wave = torch.randn(2, 5000) * 0.1
    mel = mel_spectrogram(wave, cfg)
    assert mel.shape == (2, cfg.n_mels, num_frames(5000, cfg))
    assert mel.shape[-1] == 5000 // 256 + 1


def test_silence_is_clamped_and_tone_peaks_at_its_band():
    cfg = TTSMelConfig()
    silent = mel_spectrogram(torch.zeros(1, 4000), cfg)
    assert torch.allclose(silent, torch.full_like(silent, math.log(cfg.clamp)))
    t = torch.arange(16000) / 16000
    low = mel_spectrogram(torch.sin(2 * math.pi * 300 * t), cfg)[0].mean(-1)
    high = mel_spectrogram(torch.sin(2 * math.pi * 3000 * t), cfg)[0].mean(-1)
    assert low.argmax() < high.argmax()


def test_module_matches_function_and_is_differentiable():
    wave = (torch.randn(1, 3000) * 0.1).requires_grad_()
    out = LogMelSpectrogram()(wave)
    assert torch.allclose(out, mel_spectrogram(wave))
    out.mean().backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="f_max"):
        TTSMelConfig(f_max=9000)
    with pytest.raises(ValueError, match="wave"):
        mel_spectrogram(torch.zeros(1, 1, 100))
