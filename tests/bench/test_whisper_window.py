"""speechkit.bench.whisper_window: Whisper decoded with and without its 30 s window."""

from __future__ import annotations

import re

from speechkit.bench import whisper_window


def test_padded_and_unpadded_wer_of_a_directory_of_audio(tiny_en, speech_dir, capsys):
    packed, _ = tiny_en
    argv = ["--model", str(packed), "--audio-dir", str(speech_dir)]
    argv += ["--text", str(speech_dir / "text"), "--every", "1", "--max-new-tokens", "8"]
    assert whisper_window.main(argv) == 0
    out = capsys.readouterr().out
    assert "greedy, 2 eng utterances" in out
    padded = float(re.search(r"padded to 30 s: WER ([\d.]+) %", out).group(1))
    assert padded < 30  # the window Whisper was trained on: the words come out
    lengths = re.search(r"tokens per hypothesis \[([\d, ]+)\] \(cap 8\)", out).group(1)
    assert all(1 <= int(n) <= 8 for n in lengths.split(","))
    assert out.count("REF ") == 2
