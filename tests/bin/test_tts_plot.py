"""speechkit tts-plot: one column per language, its same-voice row where there is one; the PNG;
clear errors without a synthesis directory or without matplotlib (the ``plot`` extra)."""

from __future__ import annotations

import sys

import pytest
from tts_synth_fakes import Row, write_synth_dir

from speechkit.bin import tts_plot


def test_each_language_shows_its_first_same_voice_row_else_its_first_row():
    rows = [
        {"id": "e1", "language": "eng", "ref_speaker": "eng-a", "syn_speaker": "eng-b"},
        {"id": "e2", "language": "eng", "ref_speaker": "eng-a", "syn_speaker": "eng-a"},
        {"id": "e3", "language": "eng", "ref_speaker": "eng-c", "syn_speaker": "eng-c"},
        {"id": "d1", "language": "deu", "ref_speaker": "deu-x", "syn_speaker": "deu-a"},
        {"id": "d2", "language": "deu", "ref_speaker": "deu-y", "syn_speaker": "deu-a"},
    ]
    assert {lang: r["id"] for lang, r in tts_plot.pick(rows).items()} == {"eng": "e2", "deu": "d1"}


def test_the_picture_is_a_png(tmp_path, capsys):
    synth = write_synth_dir(
        tmp_path,
        [Row("e1", "where is the museum", "eng", "eng-a", "eng-a", 150, 160),
         Row("d1", "guten morgen", "deu", "deu-x", "deu-a", 200, 180)],
    )  # fmt: skip
    out = tmp_path / "mels.png"
    assert tts_plot.main(["--synth", str(synth), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and capsys.readouterr().out.strip() == str(out)


def test_a_missing_synthesis_or_matplotlib_is_a_clear_error(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        tts_plot.main(["--synth", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "no such directory" in capsys.readouterr().err
    synth = write_synth_dir(tmp_path, [Row("e1", "hello", "eng", "eng-a", "eng-a")])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(SystemExit, match=r"needs matplotlib: pip install '\.\[plot\]'"):
        tts_plot.main(["--synth", str(synth), "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()
