"""speechkit.bench.whisper_profile: encoder and decoding time of one utterance, both systems."""

from __future__ import annotations

import re

import pytest

from speechkit.bench import whisper_profile


def test_profile_of_an_audio_file(tiny_en, speech_dir, capsys):
    pytest.importorskip("faster_whisper")
    packed, ct2 = tiny_en
    argv = ["--model", str(packed), "--ct2-dir", str(ct2), "--audio", str(speech_dir / "utt0.flac")]
    assert whisper_profile.main(argv + ["--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    seconds = re.search(
        r"encoder \(30 s window\): speechkit ([\d.]+) s, CTranslate2 ([\d.]+) s", out
    )
    assert seconds and all(float(x) > 0 for x in seconds.groups())
    assert "full transcription:" in out and "decoding (difference):" in out
    assert "Self CPU" in out  # the torch.profiler table
