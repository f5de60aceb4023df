"""End to end: stages 1-4 of egs/phrasebook/prune1/run.sh on a tiny corpus, on CPU: corpus ->
tokenizer -> event tagger and its accuracy -> speaker and event contexts of every cut -> base
model, decoded and scored. Checks that the stages fit together; the figures are RESULTS.md's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

from speechkit.data.contexts import ContextStore

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "phrasebook" / "prune1"
TINY_BASE = " ".join(
    f"--set {kv}"
    for kv in ["model.d_model=32", "model.n_heads=2", "model.encoder_layers=1",
               "model.encoder_ffn=64", "model.cgmlp_units=64", "model.decoder_layers=1",
               "model.decoder_ffn=64", "model.subsampling_channels=8", "trainer.max_steps=2",
               "trainer.valid_every_steps=0", "trainer.average_best=1", "data.num_workers=0"]
)  # fmt: skip
TINY_TAGGER = "--set trainer.max_steps=2 trainer.valid_every_steps=0 trainer.average_best=1"


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune_recipe")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--stop_stage", "4", "--data", str(tmp / "data"),
           "--exp", str(tmp / "exp"), "--contexts", str(tmp / "contexts"),
           "--tokenizer", str(tmp / "tokenizer"), "--results", str(tmp / "RESULTS.md"),
           "--hours", "0.02", "--beam", "2", "--tagger_args", TINY_TAGGER,
           "--train_args", TINY_BASE]  # fmt: skip
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=1800
    )  # a loaded 2-core machine
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp


def test_every_cut_of_every_split_has_a_row_in_both_context_stores(recipe_run):
    ids = set()
    for split in ("train", "dev", "test_seen", "test_novel"):
        ids |= {c.id for c in CutSet.from_file(recipe_run / "data" / f"cuts_{split}.jsonl.gz")}
    for kind in ("speaker", "event"):
        store = ContextStore.load(recipe_run / "contexts", kind)
        assert set(store.index) == ids
        assert int(store.valid.sum()) > 0


def test_tagger_and_base_model_are_trained_scored_and_reported(recipe_run):
    exp = recipe_run / "exp"
    assert (exp / "tagger" / "model_avg.pt").is_file()
    assert (exp / "base15m" / "model_avg.pt").is_file()
    for split in ("test_seen", "test_novel"):
        scores = json.loads((exp / "tagger" / f"score_{split}.json").read_text())
        assert 0.0 <= scores["accuracy"] <= 1.0 and scores["cuts"] > 0
        assert (exp / "base15m" / f"decode_{split}" / "scores.json").is_file()
    text = (recipe_run / "RESULTS.md").read_text()
    assert text.count("## event tagger") == 2 and text.count("## base model") == 2
    assert "./run.sh" in text


def test_gated_whisper_stages_train_decode_score_and_bench(recipe_run, tmp_path):
    """Stages 10-12 on the same tiny corpus with a tiny random Whisper model as ``--whisper``:
    the full, static and dynamic arms train, decode with --budget, are scored, and the gated
    arms are timed against the full one."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
    from whisper_fakes import write_tiny_whisper

    init = write_tiny_whisper(tmp_path / "w", n_text_ctx=128, n_text_layer=2)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    results = tmp_path / "RESULTS.md"
    cmd = ["bash", str(RECIPE / "run.sh"), "--stage", "10", "--stop_stage", "12",
           "--data", str(recipe_run / "data"), "--exp", str(tmp_path / "exp"),
           "--results", str(results), "--whisper", str(init), "--whisper_steps", "2",
           "--whisper_utts", "2", "--beam", "2",
           "--whisper_args", "whisper.pad_to_window=false trainer.valid_every_steps=0 "
                             "trainer.average_best=1 data.max_target_tokens=100"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for arm in ("full", "static", "dyn"):
        stats = json.loads(
            (
                tmp_path / "exp" / "whisper" / arm / "decode_test_seen" / "decode_stats.json"
            ).read_text()
        )
        assert stats["model_type"] == "gated_whisper" and stats["gates"]["budget"] == 0.5
    text = results.read_text()
    assert text.count("## gated Whisper") == 6  # 3 arms x 2 test sets
    assert text.count("## Gated vs full Whisper") == 2  # static and dyn against full
    assert text.count("## Gated Whisper: what each budget keeps") == 2
    assert all((tmp_path / f"gates_whisper_{arm}.png").stat().st_size > 1000
               for arm in ("static", "dyn"))  # fmt: skip
