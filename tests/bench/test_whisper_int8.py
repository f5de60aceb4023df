"""speechkit.bench.whisper_int8: int8 layer choices against float32 on a directory of audio."""

from __future__ import annotations

import argparse

import pytest

from speechkit.bench import whisper_int8


def test_variants_are_compared_with_float32_and_the_section_is_written(tiny_en, speech_dir,
                                                                       tmp_path):  # fmt: skip
    packed, _ = tiny_en
    results = tmp_path / "RESULTS.md"
    argv = ["--model", str(packed), "--audio-dir", str(speech_dir), "--text",
            str(speech_dir / "text"), "--threads", "1", "--variant", "all=",
            "--variant", "none=encoder.,decoder.,decoder.output", "--results-md", str(results)]  # fmt: skip
    assert whisper_int8.main(argv) == 0
    text = results.read_text()
    assert f"## Whisper int8: which layers to quantise ({packed.name})" in text
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in text.splitlines() if ln.startswith("| ")
            and ln.split("|")[1].strip() in ("float32", "all", "none")}  # fmt: skip
    assert rows["float32"][:2] == ["-", "100"]
    # every layer kept float32, the output projection too: float32's transcripts exactly
    assert rows["none"][0] == "encoder., decoder., decoder.output" and rows["all"][0] == "(none)"
    assert float(rows["none"][1]) == 100 and 0 <= float(rows["all"][1]) <= 100
    assert float(rows["float32"][2]) < 30 and float(rows["all"][2]) < 40  # WER %
    assert all(float(c) > 0 for r in rows.values() for c in r[3:6])  # RTFx and speed ratios


def test_bad_variants_are_refused(capsys):
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=PATTERNS"):
        whisper_int8.parse_variant("fc2")
    assert whisper_int8.parse_variant("x=ffn.net.3,decoder.output") == (
        "x", ("ffn.net.3", "decoder.output"))  # fmt: skip
    with pytest.raises(SystemExit):
        whisper_int8.parse_args(["--cuts", "c.jsonl", "--variant", "a=", "--variant", "a=x"])
    assert "distinct" in capsys.readouterr().err
