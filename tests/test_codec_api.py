"""speechkit.codec: encode/decode at a bitrate, every kind of awkward input, packing and loading
(checksums), chunked coding of long inputs."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from speechkit import codec as codec_api
from speechkit.checkpoint import save_checkpoint
from speechkit.config import to_dict
from speechkit.models.codec import Codec, CodecConfig, SpectralConfig
from speechkit.nn.quantize import RVQConfig
from speechkit.pretrained import PackedModelError

HOP = 320


def speechlike(seconds: float, sr: int = 16000, seed: int = 0, noise: float = 0.003) -> np.ndarray:
    """Harmonics of a gliding pitch, amplitude-modulated: more speech-like than noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * x + noise * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module", params=["conv", "spectral"])
def packed(request, tmp_path_factory):
    """A small packed codec of each backbone: every test below runs on both."""
    torch.manual_seed(0)
    cfg = CodecConfig(
        backbone=request.param,
        channels=4,
        res_dilations=[1],
        rvq=RVQConfig(dim=16, num_quantizers=6, codebook_size=1024, kmeans_iters=2),
        spectral=SpectralConfig(dim=32, enc_layers=1, dec_layers=2),
    )
    model = Codec(cfg).train()
    model(torch.from_numpy(np.stack([speechlike(1.0, seed=s) for s in range(4)])))  # k-means init
    return codec_api.save(model.eval(), tmp_path_factory.mktemp("codec") / "packed", "test")


@pytest.fixture(scope="module")
def codec(packed):
    return codec_api.load(packed)


def test_encode_decode_at_a_bitrate(codec):
    wave = speechlike(1.0)
    codes = codec.encode(wave)
    assert codes.shape == (1, 6, 50) and codes.dtype == torch.int64
    assert codec.encode(wave, kbps=1.5).shape == (1, 3, 50)
    assert torch.equal(codec.encode(wave, kbps=1.5), codes[:, :3])
    assert codec.bitrates()[3] == 1.5
    out = codec.decode(codes)
    assert out.shape == (1, 50 * HOP) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="kbps or n_q"):
        codec.encode(wave, kbps=3, n_q=2)


def test_silence_and_clipped_audio_code_without_trouble(codec):
    for wave in (
        np.zeros(16000, np.float32),
        np.clip(speechlike(1.0) * 20, -1.0, 1.0),  # hard-clipped at full scale
        speechlike(1.0) * 5,
    ):  # beyond full scale: coded as it is
        out = codec.decode(codec.encode(wave))
        assert out.shape == (1, 16000) and torch.isfinite(out).all()


@pytest.mark.parametrize("samples", [1, 100, 319])
def test_shorter_than_one_frame_is_padded_to_one_frame(codec, samples):
    codes = codec.encode(speechlike(1.0)[:samples])
    assert codes.shape == (1, 6, 1)
    assert codec.decode(codes).shape == (1, HOP)


def test_refused_inputs_say_why(codec):
    with pytest.raises(ValueError, match="empty"):
        codec.encode(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        codec.encode(np.array([0.0, np.nan] * 400, np.float32))
    with pytest.raises(ValueError, match=r"\(S,\), \(B, S\) or \(B, C, S\)"):
        codec.encode(np.zeros((1, 1, 1, 10), np.float32))
    with pytest.raises(ValueError, match="integers"):
        codec.decode(torch.zeros(1, 6, 3))
    with pytest.raises(ValueError, match="codes must lie in"):
        codec.decode(torch.full((1, 2, 3), 1024))
    with pytest.raises(ValueError, match="sample_rate must be positive"):
        codec.encode(speechlike(0.1), sample_rate=-8000)


def test_other_sample_rates_are_resampled(codec):
    wave16 = torch.from_numpy(speechlike(1.0, noise=0.0))
    for sr in (8000, 44100):
        wave = speechlike(1.0, sr=sr, noise=0.0)  # the same signal (all below 4 kHz)
        codes = codec.encode(wave, sample_rate=sr)
        assert codes.shape == (1, 6, 50)
        x = codec.prepare(wave, sr)[0]
        assert x.shape == wave16.shape
        assert torch.corrcoef(torch.stack([x[100:-100], wave16[100:-100]]))[0, 1] > 0.99
    out = codec.decode(codes, sample_rate=8000)
    assert out.shape == (1, 50 * HOP // 2)


def test_multichannel_audio_is_mixed_to_mono(codec, tmp_path):
    mono = speechlike(0.5)
    stereo = np.stack([mono, mono])[None]  # (B=1, C=2, S)
    assert torch.equal(codec.encode(stereo), codec.encode(mono))
    int16 = (mono * 32767).astype(np.int16)
    assert torch.allclose(codec.prepare(int16)[0], torch.from_numpy(mono), atol=1e-4)  # PCM scale
    path = tmp_path / "stereo44k.wav"
    left = speechlike(0.5, sr=44100)
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 44100)
    assert codec.encode_file(path).shape == (1, 6, 25)


def test_long_inputs_are_coded_in_chunks_as_in_one_pass(packed):
    wave = speechlike(4.0)
    whole = codec_api.load(packed, chunk_seconds=60.0)
    chunked = codec_api.load(packed, chunk_seconds=0.2)  # 10-frame chunks + context
    assert chunked.chunk_frames == 10
    x = torch.from_numpy(wave)[None]
    z = whole.model.encoder(x[:, None])
    z_chunks = codec_api._chunked(
        lambda a: whole.model.encoder(a[:, None]), x, HOP, 1, 10, chunked.context_frames
    )
    assert torch.allclose(z_chunks, z, atol=1e-5)  # the same latent up to float rounding
    codes = whole.encode(wave)
    # (a code may flip where two codes of this untrained codebook are equally near)
    assert (chunked.encode(wave) == codes).float().mean() > 0.8
    assert torch.allclose(chunked.decode(codes), whole.decode(codes), atol=1e-5)


def test_packed_files_are_checked_and_checkpoints_load(packed, tmp_path):
    weights = torch.load(packed / "model.pt", weights_only=True)
    cfg = codec_api.load(packed).cfg
    # a codec-task checkpoint: weights under "generator.", other parts ignored
    state = {f"generator.{k}": v for k, v in weights.items()}
    state["discriminator.w"] = torch.zeros(1)
    ckpt = tmp_path / "model_avg.pt"
    save_checkpoint({"model": state, "config": {"task": "codec", "model": to_dict(cfg)}}, ckpt)
    wave = speechlike(0.5)
    from_ckpt = codec_api.load(ckpt)
    assert torch.equal(from_ckpt.encode(wave), codec_api.load(packed).encode(wave))
    repacked = codec_api.pack(ckpt, tmp_path / "repacked")
    assert torch.equal(codec_api.load(repacked).encode(wave), from_ckpt.encode(wave))

    if cfg.backbone == "conv":  # (the spectral backbone has no weight norm)
        with pytest.raises(ValueError, match="weight norm not folded"):
            codec_api.save(from_ckpt.model, tmp_path / "folded")
    path = repacked / "model.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one corrupted byte
    path.write_bytes(bytes(data))
    with pytest.raises(PackedModelError, match="sha256"):
        codec_api.load(repacked)
    save_checkpoint({"model": {}, "config": {"task": "s2t"}}, tmp_path / "s2t.pt")
    with pytest.raises(PackedModelError, match="not a codec"):
        codec_api.load(tmp_path / "s2t.pt")
    with pytest.raises(FileNotFoundError, match="no codec directory"):
        codec_api.load("no-such-codec-anywhere")


def test_a_zoo_name_loads_a_packed_codec_without_a_tokenizer(packed, tmp_path, monkeypatch):
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        yaml.safe_dump({"my-codec": {"sources": [{"kind": "url", "url": str(packed)}]}})
    )
    monkeypatch.setenv("SPEECHKIT_ZOO_REGISTRY", str(registry))
    monkeypatch.setenv("SPEECHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPEECHKIT_OFFLINE", raising=False)
    by_name = codec_api.load("my-codec")
    wave = torch.randn(1, 3200) * 0.1
    assert torch.equal(by_name.encode(wave), codec_api.load(packed).encode(wave))
    assert not (tmp_path / "cache" / "my-codec" / "tokenizer.json").exists()
