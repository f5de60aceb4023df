"""speechkit.bench.whisper_speed: speechkit vs faster-whisper on a directory of audio."""

from __future__ import annotations

import os

import pytest

from speechkit.bench import whisper_speed


def test_audio_dir_run_matches_faster_whisper_and_writes_its_section(tiny_en, speech_dir, tmp_path):
    pytest.importorskip("faster_whisper")
    packed, ct2 = tiny_en
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other section\n\nkept\n")
    argv = ["--models", str(packed), "--ct2-dirs", str(ct2), "--audio-dir", str(speech_dir)]
    argv += ["--text", str(speech_dir / "text"), "--no-int8", "--threads", "1", "--label", "t"]
    argv += ["--results-md", str(results)]
    assert whisper_speed.main(argv) == 0
    text = results.read_text()
    assert "kept" in text and "## speechkit transcribe vs faster-whisper 1.2.1 (t)" in text
    rows = [ln.split("|")[1:-1] for ln in text.splitlines() if ln.startswith(f"| {packed.name}")]
    assert len(rows) == 1  # English-only model: no translation set; --no-int8: fp32 only
    cells = [c.strip() for c in rows[0]]
    assert (cells[1], cells[3]) == ("float32", "WER %")
    assert cells[2].startswith("asr eng (2 utts, ")
    wer_sk, wer_fw, identical = (float(c) for c in cells[4:7])
    assert wer_sk == wer_fw and identical == 100  # same weights, same search: same words
    assert wer_sk < 30
    assert cells[7] == "-"  # identity to speechkit's own float32: int8 rows only
    assert all(float(c) > 0 for c in cells[8:11])  # RTFx of both, and their ratio
    assert "- command: `python -m speechkit.bench.whisper_speed --models" in text
    # Both systems run under the caller's OpenMP policy, and the section says which.
    policy = os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default)")
    assert f"OpenMP wait policy of both: {policy}." in text


def test_batched_run_against_the_pipeline_reports_peak_memory(tiny_en, speech_dir, capsys):
    pytest.importorskip("faster_whisper")
    packed, ct2 = tiny_en
    argv = ["--models", str(packed), "--ct2-dirs", str(ct2), "--audio-dir", str(speech_dir)]
    argv += ["--text", str(speech_dir / "text"), "--no-int8", "--threads", "1"]
    argv += ["--batch-size", "2", "--fw-batched", "--rss"]
    assert whisper_speed.main(argv) == 0
    text = capsys.readouterr().out
    assert "BatchedInferencePipeline (batch size 2, one file per call)" in text
    rows = [ln.split("|")[1:-1] for ln in text.splitlines() if ln.startswith(f"| {packed.name}")]
    assert len(rows) == 2  # the speed row, then the peak-RSS row
    speed, rss = ([c.strip() for c in row] for row in rows)
    assert float(speed[6]) == 100  # one batch of 2 files: the same words as the pipeline's
    assert rss[1:3] == ["float32", "2"]
    sk_peak, sk_imports, fw_peak, fw_imports = (float(c) for c in rss[3:7])
    assert 100 < sk_imports < sk_peak < 8000 and 0 < fw_imports < fw_peak < 8000  # MiB
    # faster-whisper's child never imports torch, whose import alone is 200+ MiB resident
    assert fw_imports < sk_imports - 100


def test_arguments_that_do_not_go_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        whisper_speed.parse_args(["--audio-dir", "x"])
    assert "--audio-dir and --text go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        whisper_speed.parse_args(["--models", "a", "b", "--ct2-dirs", "x"])
    assert "one directory per model" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="give --ct2-dirs"):
        whisper_speed.ct2_dir("my-own-whisper", None)
