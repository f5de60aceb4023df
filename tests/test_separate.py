"""speechkit.separate: chunked overlap-add equals one pass, memory is bounded by the chunk, and
bad input (unknown class, bad enrollment, other rates, several channels) is handled."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from speechkit.bin.separate import main as separate_main
from speechkit.models.separation import Separator, SeparatorConfig
from speechkit.separate import Extractor, load_trained


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Separator(
        SeparatorConfig(channels=16, hidden=24, query_dim=8, dilations=[1, 2, 4], stacks=1)
    )
    for block in m.blocks:
        torch.nn.init.normal_(block.film.weight, std=0.3)
    return m.eval()


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    """A trained-model directory as ``speechkit train`` leaves it (model_avg.pt)."""
    from speechkit.checkpoint import save_checkpoint
    from speechkit.config import to_dict

    out = tmp_path_factory.mktemp("sepmodel")
    save_checkpoint({"model": model.state_dict(),
                     "config": {"model_type": "separator", "model": to_dict(model.cfg)}},
                    out / "model_avg.pt")  # fmt: skip
    return out


def test_chunked_overlap_add_equals_one_pass(model):
    ex = Extractor(model, query="speech", chunk_s=1.0)
    x = np.random.default_rng(0).standard_normal(16000 * 5 + 37).astype(np.float32) * 0.1
    whole = ex._run(x)
    np.testing.assert_allclose(ex(x), whole, atol=1e-5)
    blocks = [x[i : i + 3001] for i in range(0, len(x), 3001)]  # odd block sizes
    np.testing.assert_allclose(np.concatenate(list(ex.stream(blocks))), whole, atol=1e-5)
    assert len(ex(x[:100])) == 100  # shorter than one STFT window


def test_remix_adds_the_input_back_in_the_given_share(model):
    """``remix`` r: (1 - r) * estimate + r * input, the same chunked as in one pass."""
    x = np.random.default_rng(4).standard_normal(16000 * 3 + 11).astype(np.float32) * 0.1
    est = Extractor(model, query="speech", chunk_s=1.0)(x)
    half = Extractor(model, query="speech", chunk_s=1.0, remix=0.25)(x)
    np.testing.assert_allclose(half, 0.75 * est + 0.25 * x, atol=1e-5)
    np.testing.assert_allclose(Extractor(model, query="speech", remix=1.0)(x), x, atol=1e-6)
    assert not np.allclose(est, x, atol=1e-3)  # so the checks above could fail
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"remix must lie in \[0, 1\]"):
            Extractor(model, query="speech", remix=bad)


def test_memory_is_bounded_by_the_chunk_not_the_length(model, tmp_path):
    ex = Extractor(model, query="speech", chunk_s=1.0)
    peaks = {}
    for seconds in (10, 40):
        src = tmp_path / f"in{seconds}.wav"
        sf.write(src, np.random.default_rng(1).standard_normal(16000 * seconds) * 0.1, 16000)
        tracemalloc.start()
        ex.file(src, tmp_path / f"out{seconds}.wav", block_s=2.0)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sf.info(tmp_path / f"out{seconds}.wav").frames == 16000 * seconds
    assert peaks[40] < 1.3 * peaks[10]  # 4x the audio, about the same peak


def test_other_rates_and_channels_are_resampled_and_mixed_down(model, tmp_path, caplog):
    ex = Extractor(model, query="music", chunk_s=2.0)
    stereo = np.random.default_rng(2).standard_normal((2, 8000 * 3)).astype(np.float32) * 0.1
    with caplog.at_level("INFO", logger="speechkit.separate"):
        ex(stereo[:1], sample_rate=8000)  # (1, samples), as lhotse loads a mono cut: no log
        assert "averaging" not in caplog.text
        out = ex(stereo, sample_rate=8000)
        assert "averaging 2 channels to mono" in caplog.text
    assert out.shape == (8000 * 3,) and np.isfinite(out).all()
    np.testing.assert_allclose(out, ex(stereo.mean(0), sample_rate=8000), atol=1e-6)
    sf.write(tmp_path / "st.wav", stereo.T, 44100)
    info = ex.file(tmp_path / "st.wav", tmp_path / "st_out.wav")
    assert info["sample_rate"] == 44100 and sf.info(tmp_path / "st_out.wav").channels == 1
    assert sf.info(tmp_path / "st_out.wav").frames == stereo.shape[1]


def test_bad_queries_and_inputs_are_clear_errors(model):
    with pytest.raises(ValueError, match="unknown query class 'sirens'"):
        Extractor(model, query="sirens")
    with pytest.raises(ValueError, match="exactly one query"):
        Extractor(model, query="speech", text="the speech")
    ex = Extractor(model, query="speech")
    with pytest.raises(ValueError, match="NaN"):
        ex(np.full(1600, np.nan, np.float32))
    with pytest.raises(ValueError, match="expected audio"):
        ex(np.zeros((1, 2, 3), np.float32))


def test_cli_on_a_file_and_its_errors(model_dir, tmp_path, capsys):
    src = tmp_path / "in.flac"
    sf.write(src, np.random.default_rng(3).standard_normal(16000 * 3) * 0.1, 16000)
    assert separate_main(["--model", str(model_dir), "--query", "speech", str(src),
                          "-o", str(tmp_path / "out.wav")]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["seconds"] == 3.0 and report["peak_rss_mib"] > 0
    assert sf.info(tmp_path / "out.wav").frames == 48000
    # --remix 1 gives the input back (to 16-bit PCM), whatever the model does
    assert separate_main(["--model", str(model_dir), "--query", "speech", str(src), "--remix",
                          "1", "-o", str(tmp_path / "same.wav")]) == 0  # fmt: skip
    capsys.readouterr()
    same, _ = sf.read(tmp_path / "same.wav", dtype="float32")
    np.testing.assert_allclose(same, sf.read(src, dtype="float32")[0], atol=1e-4)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(32000), 16000)
    for args, message in ((["--enroll", str(silent)], "silent"),
                          (["--query", "sirens"], "unknown query class"),
                          (["--query", "speech", "--remix", "2"], "remix must lie")):  # fmt: skip
        with pytest.raises(SystemExit) as err:
            separate_main(
                ["--model", str(model_dir), *args, str(src), "-o", str(tmp_path / "x.wav")]
            )
        assert err.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a tagger"):
        load_trained(model_dir, "tagger")
