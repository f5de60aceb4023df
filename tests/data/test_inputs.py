"""Command-line audio inputs as cuts: files, a wav.scp (pipes only when allowed), a manifest;
inputs that cannot be opened come back as named errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording

from speechkit.data.audio import load_audio
from speechkit.data.inputs import collect_inputs
from speechkit.data.kaldi import KaldiDataError

SR = 16000


def _wav(path, seconds, sr=SR):
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return path


def test_files_wav_scp_and_manifest_in_order(tmp_path):
    a, b, c = (_wav(tmp_path / f"{k}.wav", 0.5 + 0.25 * i) for i, k in enumerate("abc"))
    (tmp_path / "empty.wav").write_bytes(b"")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u1 {b}\nu2 cat {c} |\nu3 false |\nu4 {tmp_path / 'nope.wav'}\n")
    CutSet.from_cuts([Recording.from_file(a, recording_id="m1").to_cut()]).to_file(
        tmp_path / "cuts.jsonl.gz"
    )
    files = [str(a), str(tmp_path / "empty.wav")]
    got = collect_inputs(files, scp, tmp_path / "cuts.jsonl.gz", allow_pipes=True)
    assert [cut.id for cut in got.cuts] == [str(a), "u1", "u2", "m1"]
    assert [cut.duration for cut in got.cuts] == pytest.approx([0.5, 0.75, 1.0, 0.5])
    expected = sf.read(c, dtype="float32")[0]
    np.testing.assert_allclose(load_audio(got.cuts[2]), expected, atol=1e-4)  # via the pipe
    reasons = {e.name: e.reason for e in got.errors}
    assert set(reasons) == {str(tmp_path / "empty.wav"), "u3", "u4"} and len(got) == 7
    assert reasons["u3"].startswith("command failed (exit 1)")
    assert "no such file" in reasons["u4"] and "empty file" in reasons[str(tmp_path / "empty.wav")]


def test_pipes_are_refused_without_allow_pipes(tmp_path):
    """Hostile inputs: neither a wav.scp pipe (not allowed) nor a file named like a pipe runs."""
    marker = tmp_path / "ran"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u1 {_wav(tmp_path / 'a.wav', 0.5)}\nu2 touch {marker} |\n")
    with pytest.raises(KaldiDataError, match=r"wav.scp:2: recording 'u2' is a shell command"):
        collect_inputs(wav_scp=scp)
    got = collect_inputs([f"touch {marker} |"], allow_pipes=True)
    assert not got.cuts and "no such file" in got.errors[0].reason
    assert not marker.exists()
