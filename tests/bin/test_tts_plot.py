"""speechkit tts-plot: one column per language, its same-voice row where there is one; what a
column draws (the vocoded wave beside the predicted mel, YIN on both waves); the PNG; clear errors without a synthesis directory or without matplotlib (the ``plot`` extra)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from context_cuts import voice
from tts_synth_fakes import Row, write_synth_dir

from speechkit.bin import tts_plot
from speechkit.tts.mel import TTSMelConfig, mel_spectrogram


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


def test_a_column_shows_what_the_listener_hears_and_both_pitches(tmp_path):
    # a 150 Hz reference, a 190 Hz "synthesis" whose stored mel is from a 120 Hz tone: the
    # vocoded row and the synthesis F0 must come from the wave, not from the stored mel
    synth = write_synth_dir(tmp_path, [Row("e1", "hello", "eng", "eng-a", "eng-a", 150, 190)])
    mel_cfg = TTSMelConfig()
    row = {"id": "e1", "reference": str(tmp_path / "refs" / "e1.wav")}
    stored = torch.load(synth / "mel" / "e1.pt")
    stored["mel"] = mel_spectrogram(torch.from_numpy(voice(120.0, 0.8)), mel_cfg)[0]
    torch.save(stored, synth / "mel" / "e1.pt")
    panels, pitch = tts_plot.drawn(synth, row, mel_cfg)
    assert list(panels) == ["reference", "predicted mel", "vocoded synthesis"]
    assert np.allclose(panels["predicted mel"], stored["mel"].numpy())
    assert not np.allclose(panels["vocoded synthesis"], panels["predicted mel"], atol=0.1)
    assert np.nanmedian(pitch["reference F0 (YIN)"]) == pytest.approx(150, rel=0.03)
    assert np.nanmedian(pitch["synthesis F0 (YIN)"]) == pytest.approx(190, rel=0.03)
    assert np.allclose(pitch["predicted pitch"], 190, rtol=1e-3)  # the stored contour
