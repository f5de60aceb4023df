"""speechkit.nn.spectral_loss: the codec's reconstruction losses and SI-SDR."""

from __future__ import annotations

import math

import torch

from speechkit.nn.spectral_loss import MelLoss, MultiResolutionSTFTLoss, si_sdr


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
