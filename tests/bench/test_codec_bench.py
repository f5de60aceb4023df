"""speechkit.bench.codec: the metrics on synthetic signals, delay alignment, the reference
codecs (when their tools are installed), and one end-to-end run into RESULTS.md with a PNG."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit import codec as codec_api
from speechkit.bench import BENCHMARKS
from speechkit.bench import codec as bench
from speechkit.models.codec import Codec, CodecConfig, SpectralConfig
from speechkit.nn.quantize import RVQConfig

SR = 16000


def voiced(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A vowel-like signal: harmonics of a gliding pitch through two formant-ish resonances,
    syllable-rate amplitude modulation, so PESQ's voice activity detector finds speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 130 + 25 * np.sin(2 * math.pi * 0.8 * t)
    phase = 2 * math.pi * np.cumsum(f0) / SR
    x = sum(
        np.sin(k * phase)
        * (
            np.exp(-(((k * 130 - 700) / 300) ** 2))
            + 0.5 * np.exp(-(((k * 130 - 1800) / 400) ** 2))
            + 0.05
        )
        for k in range(1, 40)
    )
    env = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * t) ** 2
    x = x * env + 0.001 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def test_registered():
    assert BENCHMARKS["codec"] == "codec"


def test_align_undoes_a_delay():
    ref = voiced(1.0)
    for lag in (0, 37, -25):
        deg = np.roll(ref, lag)
        aligned = bench.align(ref, deg)
        assert len(aligned) == len(ref)
        assert np.allclose(aligned[200:-200], ref[200:-200], atol=1e-6)


def test_quality_metrics_order_clean_above_noisy():
    ref = voiced()
    q = bench.Quality()
    same = q(ref, ref)
    rng = np.random.default_rng(1)
    noisy = ref + rng.standard_normal(len(ref)).astype(np.float32) * np.std(ref) * 10 ** (-5 / 20)
    bad = q(ref, noisy.astype(np.float32))
    assert same["pesq"] > 4.0 and same["stoi"] > 0.99 and same["sisdr"] > 40 and same["mel"] < 1e-4
    assert bad["pesq"] < same["pesq"] - 1 and bad["stoi"] < same["stoi"]
    assert abs(bad["sisdr"] - 5.0) < 0.5  # the mixing SNR
    assert bad["mel"] > 0.1
    if q.speaker is not None:
        assert same["speaker"] > 0.99 and bad["speaker"] < same["speaker"]


@pytest.mark.skipif(
    not (shutil.which("opusenc") and shutil.which("c2enc")),
    reason="optional comparison: opus-tools / codec2 not installed",
)
def test_reference_codecs_degrade_with_the_bitrate():
    ref = voiced()
    q = bench.Quality()
    scores = {}
    for system in (bench.opus_system(6), bench.opus_system(16), bench.codec2_system(3200)):
        out = system.run([ref])[0]
        assert abs(len(out) - len(ref)) < SR // 10 and np.isfinite(out).all()
        scores[system.name] = q(ref, bench.align(ref, out))["pesq"]
    assert scores["Opus 16 kbps"] > scores["Opus 6 kbps"]


def test_end_to_end_into_results_md(tmp_path):
    torch.manual_seed(0)
    cfg = CodecConfig(
        channels=4,
        res_dilations=[1],
        rvq=RVQConfig(dim=16, num_quantizers=12, codebook_size=1024, kmeans_iters=2),
    )
    model = Codec(cfg).train()
    model(torch.from_numpy(np.stack([voiced(1.0, s) for s in range(3)])))  # codebook init
    packed = codec_api.save(model.eval(), tmp_path / "codec")
    cuts = []
    for i in range(2):
        path = tmp_path / f"u{i}.flac"
        sf.write(path, voiced(1.5, seed=i), SR)
        cut = Recording.from_file(path, recording_id=f"u{i}").to_cut()
        cut.supervisions = [
            SupervisionSegment(f"u{i}", f"u{i}", 0, cut.duration, text="a", language="eng")
        ]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    md, png = tmp_path / "RESULTS.md", tmp_path / "spec.png"
    argv = [
        "--codec",
        str(packed),
        "--cuts",
        str(tmp_path / "cuts.jsonl.gz"),
        "--whisper",
        "",
        "--kbps",
        "1.5",
        "6",
        "--opus",
        "--codec2",
        "--png",
        str(png),
        "--results-md",
        str(md),
        "--title",
        "Codec test",
    ]
    assert bench.main(argv) == 0
    text = md.read_text()
    assert "## Codec test" in text and "| speechkit codec 1.5 kbps |" in text
    assert "| speechkit codec 6 kbps |" in text and "encode RTFx" in text
    assert "![spectrograms](spec.png)" in text and "python -m speechkit.bench.codec" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "2 English utterances" in text


def test_the_limit_is_shared_between_manifests(tmp_path):
    paths = []
    for name in ("a", "b"):
        cuts = []
        for i in range(4):
            path = tmp_path / f"{name}{i}.flac"
            sf.write(path, voiced(0.3, seed=i), SR)
            cut = Recording.from_file(path, recording_id=f"{name}{i}").to_cut()
            sup = SupervisionSegment(
                f"{name}{i}", f"{name}{i}", 0, cut.duration, text="a", language="eng"
            )
            cut.supervisions = [sup]
            cuts.append(cut)
        CutSet.from_cuts(cuts).to_file(tmp_path / f"{name}.jsonl.gz")
        paths.append(tmp_path / f"{name}.jsonl.gz")
    assert bench.english_set(paths, 5).ids == ["a0", "a1", "a2", "b0", "b1"]


def test_oracle_rows_put_the_original_spectra_on_the_decoders_frames(tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = CodecConfig(
        backbone="spectral",
        rvq=RVQConfig(dim=16, num_quantizers=4, codebook_size=32, kmeans_iters=2),
        spectral=SpectralConfig(dim=24, enc_layers=1, dec_layers=1),
    )
    model = Codec(cfg).train()
    model(torch.from_numpy(np.stack([voiced(1.0, s) for s in range(2)])))  # codebook init
    codec = codec_api.load(codec_api.save(model.eval(), tmp_path / "codec"))
    w = voiced(0.73, seed=3)  # not whole frames: the padding must line up too
    decoder = codec.model.decoder
    x = codec.model.pad(torch.from_numpy(w)[None])
    ref = torch.stft(x, 1024, 320, 1024, window=decoder.window, center=True, return_complex=True)
    ref = ref[..., :-1]  # the frames the decoder predicts
    # a decoder that predicts the original's spectra exactly: both rows give the input back
    monkeypatch.setattr(decoder, "heads", lambda latent: (ref.abs().log(), ref.real, ref.imag))
    rows = bench.oracle_systems(codec, 1.0)
    assert [r.name for r in rows] == [
        "oracle: codec 1 kbps amplitude + original phase",
        "oracle: original amplitude + codec 1 kbps phase",
    ]
    for row in rows:
        (out,) = row.run([w])
        assert out.shape == w.shape
        np.testing.assert_allclose(out, w, atol=1e-4)
    # the real decoder's phase with the original amplitude differs from the input
    monkeypatch.undo()
    (out,) = bench.oracle_systems(codec, 1.0)[1].run([w])
    assert np.abs(out - w).max() > 1e-2


def test_oracle_needs_a_spectral_codec():
    conv = codec_api.CodecModel(Codec(CodecConfig(channels=4, res_dilations=[1])).eval())
    with pytest.raises(ValueError, match="spectral codec"):
        bench.oracle_systems(conv, 1.5)
