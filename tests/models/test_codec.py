"""speechkit.models.codec and codec_disc: frame arithmetic, bitrates, the receptive field that
chunked coding relies on, and the discriminator's outputs."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.models.codec import Codec, CodecConfig, SpectralConfig
from speechkit.models.codec_disc import MultiScaleSTFTDiscriminator, STFTDiscConfig
from speechkit.nn.quantize import RVQConfig


def small(**kw) -> CodecConfig:
    rvq = RVQConfig(dim=16, num_quantizers=6, codebook_size=32, kmeans_iters=2)
    return CodecConfig(channels=4, res_dilations=[1], rvq=rvq, **kw)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return Codec(small()).eval()


@pytest.mark.parametrize("samples", [1, 319, 320, 321, 3200])
def test_one_frame_per_320_samples_and_back(codec, samples):
    codes = codec.encode(torch.randn(2, samples) * 0.1)
    frames = max(1, -(-samples // 320))
    assert codes.shape == (2, 6, frames) and codes.dtype == torch.int64
    assert codec.decode(codes).shape == (2, frames * 320)
    assert codec.decode(codes[:, :2]).shape == (2, frames * 320)  # a lower bitrate decodes too


def test_bitrates_of_the_default_config():
    cfg = CodecConfig()
    assert cfg.hop == 320 and cfg.frame_rate == 50
    assert [cfg.quantizers_for(k) for k in (1.5, 3.0, 6.0)] == [3, 6, 12]
    assert cfg.bitrate(12) == 6000
    with pytest.raises(ValueError, match="below one codebook"):
        cfg.quantizers_for(0.2)
    with pytest.raises(ConfigError, match="kernel must be odd"):
        CodecConfig(kernel=4)


def test_training_forward_masks_padding_frames_and_keeps_the_length():
    torch.manual_seed(0)
    model = Codec(small()).train()
    out = model(torch.randn(2, 1000) * 0.1, torch.tensor([1000, 400]))
    assert out.wave.shape == (2, 1280)
    assert out.frame_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert out.first.shape == (2, 16, 4) and out.commit_loss.ndim == 0
    (out.wave.pow(2).mean() + out.commit_loss).backward()
    assert model.encoder.net[0].parametrizations.weight.original0.grad is not None


def test_receptive_field_bounds_what_reaches_a_frame(codec):
    x = torch.randn(1, 320 * 40) * 0.1
    z = codec.encoder(x[:, None])
    frame = 20
    rf = codec.receptive_field()
    far = x.clone()
    lo, hi = frame * 320 - rf, (frame + 1) * 320 + rf  # samples that may reach frame 20
    far[:, : max(0, lo)] = torch.randn(1, max(0, lo))
    far[:, hi:] = torch.randn(1, far.size(1) - hi)
    z_far = codec.encoder(far[:, None])
    assert torch.allclose(z[..., frame], z_far[..., frame], atol=1e-5)
    assert not torch.allclose(z[..., frame - 8], z_far[..., frame - 8], atol=1e-5)


def spectral(**kw) -> CodecConfig:
    rvq = RVQConfig(dim=16, num_quantizers=6, codebook_size=32, kmeans_iters=2)
    shapes = SpectralConfig(dim=24, enc_layers=2, dec_layers=2, **kw)
    return CodecConfig(backbone="spectral", rvq=rvq, spectral=shapes)


@pytest.mark.parametrize("samples", [1, 319, 320, 321, 3200])
def test_spectral_backbone_keeps_the_frame_arithmetic(samples):
    torch.manual_seed(0)
    model = Codec(spectral()).eval()
    assert model.cfg.hop == 320 and model.cfg.bitrate(6) == 1500  # 6 x 5 bits x 50 Hz
    codes = model.encode(torch.randn(2, samples) * 0.1)
    frames = max(1, -(-samples // 320))
    assert codes.shape == (2, 6, frames)
    wave = model.decode(codes[:, :2])
    assert wave.shape == (2, frames * 320) and torch.isfinite(wave).all()


def test_spectral_backbone_trains_every_part_through_the_quantiser():
    torch.manual_seed(0)
    model = Codec(spectral()).train()
    out = model(torch.randn(2, 1000) * 0.1, torch.tensor([1000, 400]))
    assert out.wave.shape == (2, 1280)
    assert out.frame_mask.tolist() == [[True] * 4, [True, True, False, False]]
    (out.wave.pow(2).mean() + out.commit_loss).backward()
    for part in (model.encoder.embed, model.decoder.embed, model.decoder.phase_head):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0
    # the spectra the training losses read are the ones the wave was made from, one per frame
    assert out.spectra.log_amp.shape == (2, 513, 4)
    torch.testing.assert_close(model.decoder.istft(out.spectra.spec), out.wave)
    assert (
        Codec(CodecConfig(channels=4, res_dilations=[1])).train()(torch.zeros(1, 640)).spectra
        is None
    )


def test_only_the_complex_encoder_input_sees_the_phase():
    """-x has x's STFT magnitudes and every phase turned by pi: the magnitude encoder cannot tell
    them apart, the complex one must (its codes can carry phase)."""
    torch.manual_seed(0)
    x = torch.randn(1, 320 * 8) * 0.1
    for encoder_input, differs in (("log_amp", False), ("complex", True)):
        model = Codec(spectral(encoder_input=encoder_input)).eval()
        z, z_neg = model.encoder(x[:, None]), model.encoder(-x[:, None])
        assert (not torch.allclose(z, z_neg, atol=1e-4)) == differs, encoder_input


@pytest.mark.parametrize("encoder_input", ["log_amp", "complex"])
def test_spectral_receptive_field_bounds_encoder_and_decoder(encoder_input):
    torch.manual_seed(0)
    model = Codec(spectral(encoder_input=encoder_input)).eval()
    rf, frame = model.receptive_field(), 30
    x = torch.randn(1, 320 * 60) * 0.1
    far = x.clone()
    lo, hi = frame * 320 - rf, frame * 320 + rf  # frame t is centred on sample t * 320
    far[:, :lo] = torch.randn(1, lo)
    far[:, hi:] = torch.randn(1, far.size(1) - hi)
    z, z_far = model.encoder(x[:, None]), model.encoder(far[:, None])
    assert torch.allclose(z[..., frame], z_far[..., frame], atol=1e-5)
    assert not torch.allclose(z[..., frame - 10], z_far[..., frame - 10], atol=1e-5)
    # decoder: latent frames further than rf samples from a sample do not reach it
    y = model.decoder(z)
    far_z = z.clone()
    span = -(-rf // 320)
    far_z[..., : frame - span] = torch.randn_like(far_z[..., : frame - span])
    far_z[..., frame + span + 1 :] = torch.randn_like(far_z[..., frame + span + 1 :])
    y_far = model.decoder(far_z)
    at = slice(frame * 320 - 160, frame * 320 + 160)
    assert torch.allclose(y[..., at], y_far[..., at], atol=1e-5)
    assert not torch.allclose(y[..., : 320 * 5], y_far[..., : 320 * 5], atol=1e-5)


def test_codec_config_refuses_unknown_backbones_and_bad_spectral_shapes():
    with pytest.raises(ConfigError, match="backbone must be one of"):
        CodecConfig(backbone="transformer")
    with pytest.raises(ConfigError, match="even n_fft >= hop"):
        SpectralConfig(hop=320, n_fft=256)
    with pytest.raises(ConfigError, match="kernel must be odd"):
        SpectralConfig(kernel=4)
    with pytest.raises(ConfigError, match="encoder_input must be log_amp or complex"):
        SpectralConfig(encoder_input="phase")


def test_discriminator_gives_logits_and_features_per_window():
    disc = MultiScaleSTFTDiscriminator(
        STFTDiscConfig(windows=[512, 256], channels=4, dilations=[1, 2])
    )
    logits, feats = disc(torch.randn(3, 8000))
    assert len(logits) == 2 and len(feats) == 2
    assert all(lg.shape[:2] == (3, 1) for lg in logits)
    assert all(len(f) == 4 for f in feats)  # first conv, 2 dilated, last conv
