"""Kaldi/ESPnet data directories <-> lhotse manifests: real round trips on tiny WAV files."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import numpy as np
import pytest
import soundfile as sf

from speechkit.bin import kaldi_data
from speechkit.data.kaldi import (
    KaldiDataError,
    format_owsm_text,
    parse_owsm_text,
    read_kaldi_dir,
    write_kaldi_dir,
)

SR = 16000


def _wav(path, seconds, freq):
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path):
    """Two recordings (one read through a pipe), three segments, two speakers, an ST line and a
    timestamped line."""
    audio = tmp_path / "audio"
    audio.mkdir()
    a = _wav(audio / "a.wav", 3.0, 440)
    b = _wav(audio / "b.wav", 2.0, 660)
    d = tmp_path / "data"
    d.mkdir()
    _write(d / "wav.scp", [f"recA {a}", f"recB cat {b} |"])
    _write(d / "segments", ["u1 recA 0.00 1.20", "u2 recA 1.20 2.50", "u3 recB 0.50 2.00"])
    _write(
        d / "text",
        [
            "u1 <eng><asr><notimestamps> hello world",
            "u2 <eng><st_deu><notimestamps> guten morgen",
            "u3 <deu><asr><0.00> der hund<0.80><0.90> lief<1.40>",
        ],
    )
    _write(d / "text.ctc", ["u1 hello world", "u2 good morning", "u3 der hund lief"])
    _write(d / "utt2spk", ["u1 spk1", "u2 spk1", "u3 spk2"])
    _write(d / "text.prev", ["u1 hi there", "u2 hallo", "u3 <na>"])
    return d


def test_owsm_text_parse_and_format():
    t = parse_owsm_text("<eng><st_deu><notimestamps> guten  morgen")
    assert (t.language, t.task, t.text, t.timestamps) == ("eng", "st_deu", "guten morgen", False)
    timed = parse_owsm_text("<deu><asr><0.00> der hund<0.80><0.90> lief<1.40>")
    assert timed.timestamps and timed.text == "der hund lief"
    assert format_owsm_text("deu", "asr", timed.text, timed.body) == (
        "<deu><asr><0.00> der hund<0.80><0.90> lief<1.40>"
    )
    plain = parse_owsm_text("just words")
    assert plain.language is None and plain.text == "just words"


def test_import_follows_speechkit_conventions(data_dir):
    result = read_kaldi_dir(data_dir, allow_pipes=True)
    cuts = {c.id: c for c in result.cuts}
    assert sorted(cuts) == ["u1", "u2", "u3"] and not result.skipped
    u1, u2, u3 = cuts["u1"], cuts["u2"], cuts["u3"]
    assert (u1.start, u1.duration) == pytest.approx((0.0, 1.2))
    s1 = u1.supervisions[0]
    assert (s1.text, s1.language, s1.speaker, u1.custom["task"]) == (
        "hello world", "eng", "spk1", "asr",
    )  # fmt: skip
    # ST: the transcript comes from text.ctc, the translation from text.
    s2 = u2.supervisions[0]
    assert s2.text == "good morning" and s2.custom["translations"] == {"deu": "guten morgen"}
    assert u2.custom["task"] == "st_deu"
    # text.prev: a line's previous text in its own task, where the dataset's prompts read it.
    assert s1.custom["text_prev"] == "hi there"
    assert s2.custom["translations_prev"] == {"deu": "hallo"} and "text_prev" not in s2.custom
    assert u3.supervisions[0].text == "der hund lief"
    # Audio: the file segment and the pipe command both decode to the right samples.
    expected = sf.read(data_dir.parent / "audio" / "b.wav", dtype="float32")[0][8000:32000]
    assert u3.recording.sources[0].type == "command"
    np.testing.assert_allclose(u3.load_audio()[0], expected, atol=1e-4)
    assert u1.load_audio().shape == (1, int(1.2 * SR))


def test_round_trip_through_cli(data_dir, tmp_path):
    manifests, out = tmp_path / "manifests", tmp_path / "exported"
    argv = ["import", "--dir", str(data_dir), "--manifests", str(manifests), "--allow-pipes"]
    assert kaldi_data.main(argv) == 0
    assert (manifests / "cuts.jsonl.gz").is_file()
    assert (manifests / "recordings.jsonl.gz").is_file()
    assert kaldi_data.main(["export", "--dir", str(out), "--manifests", str(manifests)]) == 0
    for name in ("wav.scp", "segments", "text", "text.ctc", "utt2spk"):
        assert (out / name).read_text() == (data_dir / name).read_text(), name
    # text.prev: the previous utterance of the same task in the recording, else the speaker's.
    prev = dict(line.split(" ", 1) for line in (out / "text.prev").read_text().splitlines())
    assert prev == {"u1": "<na>", "u2": "<na>", "u3": "<na>"}
    assert (out / "spk2utt").read_text() == "spk1 u1 u2\nspk2 u3\n"
    # Exported again from a re-import: a fixed point.
    again = tmp_path / "again"
    write_kaldi_dir(read_kaldi_dir(out, allow_pipes=True).cuts, again)
    for name in ("wav.scp", "segments", "text", "text.ctc", "text.prev", "utt2spk"):
        assert (again / name).read_text() == (out / name).read_text(), name


def test_text_prev_and_whole_recordings(tmp_path):
    """Plain Kaldi dir: no segments, no prefix (language from the caller), a pipe through
    ``cat`` (always installed: no external audio tool)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    d = tmp_path / "plain"
    d.mkdir()
    waves = [_wav(audio / f"{k}.wav", 0.5 + 0.25 * k, 300 + 100 * k) for k in range(3)]
    _write(d / "wav.scp", ["r0 " + str(waves[0]), f"r1 cat {waves[1]} |",
                           "r2 " + str(waves[2])])  # fmt: skip
    _write(d / "text", ["r0 first words", "r1 second words", "r2 third words"])
    _write(d / "utt2spk", ["r0 s", "r1 s", "r2 t"])
    result = read_kaldi_dir(d, language="fra", allow_pipes=True)
    cuts = {c.id: c for c in result.cuts}
    assert cuts["r1"].duration == pytest.approx(0.75)
    assert cuts["r1"].load_audio().shape == (1, int(0.75 * SR))
    assert {c.supervisions[0].language for c in result.cuts} == {"fra"}
    out = tmp_path / "out"
    write_kaldi_dir(result.cuts, out)
    assert not (out / "segments").exists()  # every utterance is its whole recording
    assert (out / "text").read_text().splitlines()[1] == "r1 <fra><asr><notimestamps> second words"
    assert (out / "text.prev").read_text() == "r0 <na>\nr1 first words\nr2 <na>\n"
    assert (out / "text.ctc").read_text() == "r0 first words\nr1 second words\nr2 third words\n"


def test_pipes_run_only_when_allowed(tmp_path, caplog):
    """Hostile input: a wav.scp pipe is refused, naming the line, unless pipes are allowed
    (``--allow-pipes`` on the command line); the command never runs."""
    marker = tmp_path / "ran"
    d = tmp_path / "data"
    d.mkdir()
    wav = _wav(tmp_path / "a.wav", 0.5, 440)
    _write(d / "wav.scp", [f"r0 {wav}", f"r1 touch {marker} |"])
    _write(d / "text", ["r0 hello", "r1 world"])
    with pytest.raises(KaldiDataError, match=r"wav.scp:2: recording 'r1' is a shell command"):
        read_kaldi_dir(d, language="eng")
    with caplog.at_level(logging.ERROR):
        argv = ["import", "--dir", str(d), "--manifests", str(tmp_path / "m"), "--language", "eng"]
        assert kaldi_data.main(argv) == 1
    assert "--allow-pipes" in caplog.text
    assert not marker.exists() and not (tmp_path / "m").exists()


def test_plain_text_without_language_is_an_error(tmp_path, data_dir):
    _write(data_dir / "text", ["u1 hello world"])
    with pytest.raises(KaldiDataError, match=r"text:1: 'u1' has no <lang><task> prefix"):
        read_kaldi_dir(data_dir, allow_pipes=True)


def test_wav_scp_line_without_path(data_dir):
    _write(data_dir / "wav.scp", ["recA /x.wav", "recB"])
    with pytest.raises(KaldiDataError, match=r"wav.scp:2: recording 'recB' has no path"):
        read_kaldi_dir(data_dir, allow_pipes=True)


def test_unknown_utterances_and_recordings_are_skipped_and_counted(data_dir, caplog):
    with open(data_dir / "text", "a") as f:
        f.write("ghost <eng><asr><notimestamps> nobody\n")
    with open(data_dir / "segments", "a") as f:
        f.write("u9 recZ 0.0 1.0\n")
    with caplog.at_level(logging.WARNING):
        result = read_kaldi_dir(data_dir, allow_pipes=True)
    assert len(result.cuts) == 3
    assert result.skipped == {"text_unknown_utterance": 1, "segment_unknown_recording": 1}
    assert "segments:4: skipping 'u9': unknown recording 'recZ'" in caplog.text
    assert "text:4: skipping 'ghost'" in caplog.text


def test_bad_segment_line_and_broken_pipe(data_dir, caplog):
    _write(data_dir / "segments", ["u1 recA 1.0 0.5"])
    with pytest.raises(KaldiDataError, match=r"segments:1: expected"):
        read_kaldi_dir(data_dir, allow_pipes=True)
    (data_dir / "segments").unlink()
    _write(data_dir / "wav.scp", ["u1 false |", f"u2 {shutil.which('true')} |"])
    with caplog.at_level(logging.WARNING):
        result = read_kaldi_dir(data_dir, allow_pipes=True)
    assert result.skipped["unreadable_audio"] == 2
    assert "wav.scp:1: skipping recording 'u1'" in caplog.text


def test_export_needs_language(data_dir, tmp_path):
    cuts = read_kaldi_dir(data_dir, allow_pipes=True).cuts
    stripped = cuts.map(
        lambda c: c.map_supervisions(lambda s: dataclasses.replace(s, language=None))
    )
    with pytest.raises(KaldiDataError, match="cut 'u1'.*no language"):
        write_kaldi_dir(stripped, tmp_path / "x")
    write_kaldi_dir(stripped, tmp_path / "y", language="spa")
    assert "<spa><asr>" in (tmp_path / "y" / "text").read_text()
