"""speechkit.models.vocoder: frame-level amplitude/phase vocoder with an inverse STFT."""

from __future__ import annotations

import math

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.models.vocoder import Vocoder, VocoderConfig
from speechkit.tts.mel import TTSMelConfig, mel_spectrogram

TINY = dict(dim=16, layers=2)


def test_output_length_is_frames_times_hop():
    voc = Vocoder(VocoderConfig(**TINY)).eval()
    for frames in (1, 7, 33):
        wave = voc(torch.randn(2, 80, frames))
        assert wave.shape == (2, frames * 256)
        assert torch.isfinite(wave).all()


def test_mel_of_a_wave_vocodes_back_to_its_length():
    # S samples -> S // hop + 1 frames -> (S // hop + 1) * hop samples, >= S: trimmed to S
    wave = torch.randn(1, 5000) * 0.1
    mel = mel_spectrogram(wave, TTSMelConfig())
    out = Vocoder(VocoderConfig(**TINY)).vocode(mel[0])
    assert out.dim() == 1 and out.numel() == (5000 // 256 + 1) * 256 >= 5000


def test_spectra_shapes_and_ranges():
    voc = Vocoder(VocoderConfig(**TINY, max_log_amp=2.0))
    s = voc.spectra(torch.randn(3, 80, 10))
    assert s.log_amp.shape == s.phase.shape == s.spec.shape == (3, 513, 10)
    assert s.phase.abs().max() <= math.pi + 1e-6
    assert s.log_amp.max() <= 2.0
    # the complex spectrum is exp(log_amp) at the predicted phase
    torch.testing.assert_close(s.spec.abs(), s.log_amp.exp(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.angle(s.spec), s.phase, rtol=1e-4, atol=1e-4)


def test_istft_inverts_a_true_stft_exactly():
    # the synthesis stage alone: a wave's own STFT through Vocoder.istft gives the wave back
    voc = Vocoder(VocoderConfig(**TINY))
    wave = torch.randn(2, 64 * 256)
    spec = torch.stft(wave, 1024, 256, 1024, torch.hann_window(1024), return_complex=True)
    assert spec.size(-1) == 65
    out = voc.istft(spec)
    assert out.shape == (2, 65 * 256)
    torch.testing.assert_close(out[:, : wave.size(1)], wave, atol=1e-4, rtol=1e-4)
    # Vocoder.stft is that analysis: the spectra its heads are trained toward
    torch.testing.assert_close(voc.stft(wave), spec)


def test_bad_mel_shape_and_bad_config_are_clear_errors():
    voc = Vocoder(VocoderConfig(**TINY))
    with pytest.raises(ValueError, match=r"mel must be \(B, 80, T\)"):
        voc(torch.randn(2, 64, 10))
    with pytest.raises(ConfigError, match="hop <= win <= n_fft"):
        VocoderConfig(hop=512, win=256)
    with pytest.raises(ConfigError, match="odd"):
        VocoderConfig(kernel=4)


def test_gradients_reach_both_heads():
    voc = Vocoder(VocoderConfig(**TINY))
    voc(torch.randn(1, 80, 8)).pow(2).sum().backward()
    for head in (voc.amp_head, voc.phase_head, voc.embed):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
