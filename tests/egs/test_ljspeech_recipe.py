"""egs/ljspeech/tts1/run.sh: its data stage on a miniature LJSpeech tree (``--download false``),
a clear error for a missing corpus, and a clear stop where the TTS stages will go."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "corpora"))
import corpus_fakes  # noqa: E402
from lhotse import CutSet  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "ljspeech" / "tts1"


def run_recipe(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data_root", str(tmp / "corpus"), "--data"]
    cmd += [str(tmp / "data"), "--dev_size", "2", "--test_size", "2", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_data_stage_prepares_the_splits_and_later_stages_stop_clearly(tmp_path):
    corpus_fakes.write_ljspeech(tmp_path / "corpus", n=9)
    proc = run_recipe(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sizes = {
        s: len(CutSet.from_file(tmp_path / "data" / f"cuts_{s}.jsonl.gz"))
        for s in ("train", "dev", "test")
    }
    assert sizes == {"train": 5, "dev": 2, "test": 2}
    proc = run_recipe(tmp_path, "--stop_stage", "2")
    assert proc.returncode == 1 and "come with the TTS issue" in proc.stdout
    assert "skip:" in proc.stderr  # stage 1 again: kept


def test_a_missing_corpus_is_named(tmp_path):
    proc = run_recipe(tmp_path)
    assert proc.returncode != 0
    assert "LJSpeech not found" in proc.stderr and "does not exist" in proc.stderr
