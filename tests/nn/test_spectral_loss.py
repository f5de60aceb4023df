"""speechkit.nn.spectral_loss: the wave generators' reconstruction losses, APNet's spectrum
losses and SI-SDR."""

from __future__ import annotations

import math

import pytest
import torch

from speechkit.nn.spectral_loss import (
    MelLoss,
    MultiResolutionSTFTLoss,
    anti_wrap,
    consistency_losses,
    phase_losses,
    si_sdr,
    spectrum_losses,
)


def tone(freq: float, seconds: float = 0.5, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(int(sr * seconds)) / sr
    return 0.5 * torch.sin(2 * math.pi * freq * t)[None]


def test_losses_are_zero_for_identical_waves_and_grow_with_the_difference():
    ref = tone(440)
    for loss in (MultiResolutionSTFTLoss(), MelLoss()):
        assert float(loss(ref, ref)) < 1e-6
        near, far = loss(tone(460), ref), loss(tone(2000), ref)
        assert 0 < float(near) < float(far)


def test_padding_is_left_out():
    ref, gen = tone(440), tone(440)
    gen_padded = torch.cat([gen, torch.randn(1, 4000)], dim=1)
    ref_padded = torch.cat([ref, torch.zeros(1, 4000)], dim=1)
    lens = torch.tensor([ref.size(1) - 512])  # frames near the end see the padding: cut them
    for loss in (MultiResolutionSTFTLoss(), MelLoss()):
        assert float(loss(gen_padded, ref_padded, lens)) < 1e-4
        assert float(loss(gen_padded, ref_padded)) > 0.1


def test_si_sdr_matches_the_mixing_ratio_and_ignores_scale():
    torch.manual_seed(0)
    ref = tone(300, seconds=1.0)
    noise = torch.randn_like(ref)
    noise = noise - noise.mean()
    # noise orthogonal to the reference (so the projection is exact), at 10 dB below it
    noise = noise - (noise * ref).sum() / (ref * ref).sum() * ref
    noise = noise * (ref.norm() / noise.norm()) * 10 ** (-10 / 20)
    assert abs(float(si_sdr(ref + noise, ref)[0]) - 10.0) < 0.1
    assert abs(float(si_sdr(3.0 * (ref + noise), ref)[0]) - 10.0) < 0.1
    assert float(si_sdr(ref, ref)[0]) > 60


def test_anti_wrapping_treats_phases_modulo_two_pi():
    x = torch.tensor([0.0, 2 * math.pi, -2 * math.pi + 0.1, math.pi - 0.1, 3 * math.pi])
    torch.testing.assert_close(anti_wrap(x), torch.tensor([0.0, 0.0, 0.1, math.pi - 0.1, math.pi]))
    ref = torch.rand(2, 9, 5) * 2 * math.pi - math.pi
    mask = torch.ones(2, 1, 5)
    assert phase_losses(ref + 2 * math.pi, ref, mask) < 1e-5  # the same phase, wrapped
    assert phase_losses(ref + 1.0, ref, mask) == pytest.approx(1.0, abs=1e-4)  # IP only
    mask[1] = 0
    wrong = ref.clone()
    wrong[1] += 1.0  # errors on masked frames do not count
    assert phase_losses(wrong, ref, mask) < 1e-5


def test_spectrum_losses_score_log_amplitude_and_phase_of_valid_frames():
    torch.manual_seed(0)
    ref = torch.polar(torch.rand(2, 9, 5) + 0.1, torch.rand(2, 9, 5) * 6 - 3)
    mask = torch.ones(2, 1, 5)
    exact = spectrum_losses(ref.abs().log(), ref.angle(), ref, mask)
    assert float(exact["amp"]) < 1e-10 and float(exact["phase"]) < 1e-5
    louder = spectrum_losses(ref.abs().log() + 0.5, ref.angle(), ref, mask)
    assert float(louder["amp"]) == pytest.approx(0.25, rel=1e-4)  # squared natural-log error
    mask[:, :, 3:] = 0
    wrong = ref.abs().log().clone()
    wrong[..., 3:] += 2.0  # errors on padded frames do not count
    assert float(spectrum_losses(wrong, ref.angle(), ref, mask)["amp"]) < 1e-10


def _stft(wave: torch.Tensor) -> torch.Tensor:
    return torch.stft(wave, 512, 160, 512, window=torch.hann_window(512), return_complex=True)


def _istft(spec: torch.Tensor) -> torch.Tensor:
    n = spec.size(-1) * 160
    return torch.istft(spec, 512, 160, 512, window=torch.hann_window(512), length=n)


def test_consistency_is_zero_for_a_signals_spectrogram_and_not_for_a_scrambled_phase():
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(1, 8000, generator=g)
    spec = _stft(wave)[..., :50]  # (1, 257, 50)
    inside = torch.zeros(1, 1, 50)
    inside[..., 2:-2] = 1  # frames whose window lies inside the synthesised wave
    real = consistency_losses(spec, _stft(_istft(spec))[..., :50], spec, inside)
    assert float(real["consistency"]) < 1e-8 and float(real["real_imag"]) == 0
    # the same amplitudes with random phases describe no signal: synthesis changes them
    phase = torch.rand(spec.shape, generator=g) * 2 * math.pi
    scrambled = spec.abs() * torch.exp(1j * phase)
    fake = consistency_losses(scrambled, _stft(_istft(scrambled))[..., :50], spec, inside)
    power = float((spec.abs().pow(2) * inside).sum() / (inside.sum() * spec.size(1)))
    assert float(fake["consistency"]) > 0.1 * power


def test_real_imag_is_the_mean_absolute_error_of_both_parts_over_counted_frames():
    ref = torch.zeros(1, 2, 3, dtype=torch.complex64)
    spec = torch.tensor([[[1 + 2j, 0, 5j], [-3j, 1, 7]]], dtype=torch.complex64)
    mask = torch.tensor([[[1.0, 1.0, 0.0]]])  # the last frame is not counted
    stats = consistency_losses(spec, spec, ref, mask)
    assert float(stats["real_imag"]) == pytest.approx((3 + 0 + 3 + 1) / 4)
    assert float(stats["consistency"]) == 0
