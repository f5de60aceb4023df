"""End to end: every stage of egs/phrasebook/s2t1/run.sh on a tiny corpus, on CPU.

A few dozen utterances, a two-step training of a very small model: this checks that the stages
fit together (manifests -> tokenizer -> checkpoints -> hypotheses -> scores -> packed model), not
the figures, which RESULTS.md reports from the full-size run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speechkit.pretrained import load_pretrained

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "phrasebook" / "s2t1"
TINY_MODEL = " ".join(
    f"--set {kv}"
    for kv in [
        "model.d_model=32",
        "model.n_heads=2",
        "model.encoder_layers=1",
        "model.encoder_ffn=64",
        "model.cgmlp_units=64",
        "model.decoder_layers=1",
        "model.decoder_ffn=64",
        "trainer.max_steps=2",
        "trainer.average_best=2",
        "data.num_workers=0",
    ]
)


def run_recipe(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data", str(tmp / "data"), "--exp", str(tmp / "exp")]
    cmd += ["--results", str(tmp / "RESULTS.md"), "--hours", "0.02", "--beam", "2"]
    cmd += ["--train_args", TINY_MODEL, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipe")
    proc = run_recipe(tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


def test_every_stage_produces_its_output(recipe_run):
    tmp, proc = recipe_run
    data, exp = tmp / "data", tmp / "exp"
    for split in ("train", "dev", "test_seen", "test_novel"):
        assert (data / f"cuts_{split}.jsonl.gz").is_file()
    assert (data / "tokenizer" / "tokenizer.model").is_file()
    assert (exp / "model_avg.pt").is_file()
    for test_set in ("test_seen", "test_novel"):
        scores = json.loads((exp / f"decode_{test_set}" / "scores.json").read_text())
        assert scores, f"no scores for {test_set}"
        subdirs = {p.name for p in (exp / f"decode_{test_set}").iterdir() if p.is_dir()}
        assert any(d.startswith("asr_") for d in subdirs)
        assert any(d.startswith("st_") for d in subdirs)
    results = (tmp / "RESULTS.md").read_text()
    assert "test_seen" in results and "test_novel" in results
    assert "Padding fraction" in results and "command:" in results
    packed = load_pretrained(exp / "packed")
    assert packed.model.cfg.d_model == 32


def test_stages_are_idempotent(recipe_run):
    tmp, _ = recipe_run
    before = (tmp / "exp" / "model_avg.pt").stat().st_mtime_ns
    proc = run_recipe(tmp, "--stage", "1", "--stop_stage", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "skip" in log.lower()
    assert (tmp / "exp" / "model_avg.pt").stat().st_mtime_ns >= before
