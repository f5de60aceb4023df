"""speechkit.bench.whisper_int8: int8 layer choices against float32 on a directory of audio."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from speechkit.bench import whisper_int8
from speechkit.nn.int8 import quantize_linears


def test_variants_are_compared_with_float32_and_the_section_is_written(tiny_en, speech_dir,
                                                                       tmp_path):  # fmt: skip
    packed, _ = tiny_en
    results = tmp_path / "RESULTS.md"
    argv = ["--model", str(packed), "--audio-dir", str(speech_dir), "--text",
            str(speech_dir / "text"), "--threads", "1", "--variant", "all=",
            "--variant", "none=encoder.,decoder.,decoder.output", "--variant", "t=/tensor",
            "--step-kernels", "plain,packed", "--results-md", str(results)]  # fmt: skip
    assert whisper_int8.main(argv) == 0
    text = results.read_text()
    assert f"## Whisper int8: which layers to quantise ({packed.name})" in text
    plain, packed_row = (whisper_int8.STEP_ROW.format(k) for k in ("plain", "packed"))
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in text.splitlines() if ln.startswith("| ")
            and ln.split("|")[1].strip() in ("float32", "all", "none", "t", plain,
                                             packed_row)}  # fmt: skip
    assert rows["float32"][:2] == ["-", "100"]
    # the other step kernels: the same model, the same transcripts as the default (half)
    assert rows[plain][:2] == ["-", "100"] and rows[packed_row][:2] == ["-", "100"]
    # every layer kept float32, the output projection too: float32's transcripts exactly
    assert rows["none"][0] == "encoder., decoder., decoder.output" and rows["all"][0] == "(none)"
    assert rows["t"][0] == "(none); per-call scales"
    assert float(rows["none"][1]) == 100 and 0 <= float(rows["all"][1]) <= 100
    assert float(rows["float32"][2]) < 30 and float(rows["all"][2]) < 40  # WER %
    assert all(float(c) > 0 for r in rows.values() for c in r[3:6])  # RTFx and speed ratios


def test_split_error_and_faster_whisper_rows(tiny_en, speech_dir, capsys):
    pytest.importorskip("faster_whisper")
    packed, ct2 = tiny_en
    argv = ["--model", str(packed), "--audio-dir", str(speech_dir), "--text",
            str(speech_dir / "text"), "--threads", "1", "--split-error", "--faster-whisper",
            "--ct2-dir", str(ct2)]  # fmt: skip
    assert whisper_int8.main(argv) == 0
    text = capsys.readouterr().out
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln}  # fmt: skip
    assert set(rows) == {"variant", "float32", "faster-whisper float32", "faster-whisper int8",
                         *whisper_int8.SPLIT_ROWS}  # fmt: skip
    assert rows["int8 weights only"][0] == "(none), simulated"
    # same weights, same search: faster-whisper float32 says what speechkit float32 says
    assert "faster-whisper float32 is 100 % identical to speechkit float32" in text
    assert float(rows["faster-whisper float32"][1]) == 100  # against itself
    for name in (*whisper_int8.SPLIT_ROWS, "faster-whisper int8"):
        assert 0 <= float(rows[name][1]) <= 100 and float(rows[name][2]) < 40  # WER %


def test_split_error_layers_round_one_side_only():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(7, 64) * torch.linspace(0.1, 3.0, 64)
    int8 = quantize_linears(nn.Sequential(lin), act_scales="tensor")[0]
    weights = whisper_int8.SplitErrorLinear(int8, lin.weight, "weights")
    acts = whisper_int8.SplitErrorLinear(int8, lin.weight, "activations")
    exact = lin(x).detach()
    q_weight = int8._weight_bias()[0].dequantize()
    # per-row scales: the same weights, the bias outside the kernel
    rows = quantize_linears(nn.Sequential(lin))[0]
    rows_weights = whisper_int8.SplitErrorLinear(rows, lin.weight, "weights")
    assert torch.allclose(rows_weights(x), weights(x), atol=1e-6)
    rows_acts = whisper_int8.SplitErrorLinear(rows, lin.weight, "activations")
    assert (rows_acts(x) - exact).abs().max() < (acts(x) - exact).abs().max()
    # weights-only: exactly float32 activations through the packed int8 weights
    assert torch.allclose(weights(x), x @ q_weight.t() + lin.bias, atol=1e-5)
    # each simulation has an error, smaller than both roundings together, and they differ
    err = {k: (m(x) - exact).abs().max().item() for k, m in
           {"w": weights, "a": acts, "int8": int8}.items()}  # fmt: skip
    assert 0 < err["w"] < 0.1 and 0 < err["a"] < 0.1 and err["int8"] > 0
    assert not torch.allclose(weights(x), acts(x))


def test_bad_variants_are_refused(capsys):
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=PATTERNS"):
        whisper_int8.parse_variant("fc2")
    with pytest.raises(argparse.ArgumentTypeError, match="row|tensor"):
        whisper_int8.parse_variant("x=/channel")
    assert whisper_int8.parse_variant("x=ffn.net.3,decoder.output") == (
        "x", ("ffn.net.3", "decoder.output"), "row")  # fmt: skip
    assert whisper_int8.parse_variant("t=/tensor") == ("t", (), "tensor")
    with pytest.raises(SystemExit):
        whisper_int8.parse_args(["--cuts", "c.jsonl", "--variant", "a=", "--variant", "a=x"])
    assert "distinct" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        whisper_int8.parse_args(["--cuts", "c.jsonl"])
    assert "nothing to compare" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        whisper_int8.parse_args(["--cuts", "c.jsonl", "--variant", "a=", "--ct2-dir", "x"])
    assert "--ct2-dir goes with --faster-whisper" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        whisper_int8.parse_args(["--cuts", "c.jsonl", "--step-kernels", "plain,fast"])
    assert "--step-kernels" in capsys.readouterr().err
    args = whisper_int8.parse_args(["--cuts", "c.jsonl", "--plain-output"])
    assert args.step_kernels == ["plain"]
