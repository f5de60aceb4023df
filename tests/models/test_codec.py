"""speechkit.models.codec and codec_disc: frame arithmetic, bitrates, the receptive field that
chunked coding relies on, and the discriminator's outputs."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.models.codec import Codec, CodecConfig
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


def test_discriminator_gives_logits_and_features_per_window():
    disc = MultiScaleSTFTDiscriminator(
        STFTDiscConfig(windows=[512, 256], channels=4, dilations=[1, 2])
    )
    logits, feats = disc(torch.randn(3, 8000))
    assert len(logits) == 2 and len(feats) == 2
    assert all(lg.shape[:2] == (3, 1) for lg in logits)
    assert all(len(f) == 4 for f in feats)  # first conv, 2 dilated, last conv
