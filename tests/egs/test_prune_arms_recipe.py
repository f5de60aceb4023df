"""End to end: the pruning stages (5-9) of egs/phrasebook/prune1/run.sh on a tiny corpus, on CPU:
the arms that need no stored context (full, static, dynamic, + language) fine-tuned from a tiny
base, decoding at a budget, the interleaved speed benchmark, the RESULTS table with its gate
pictures and the static export. The corpus comes from ../s2t1's stages 1-2 and the base model
from ``speechkit train`` (the recipe's stages 1-4, contexts and base, are tested on their own).
This checks that the stages fit together, not the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from speechkit.pretrained import load_pretrained

EGS = Path(__file__).resolve().parents[2] / "egs" / "phrasebook"
TINY = ("model.d_model=32 model.n_heads=2 model.encoder_layers=1 model.encoder_ffn=64 "
        "model.cgmlp_units=64 model.decoder_layers=1 model.decoder_ffn=64 trainer.max_steps=2 "
        "trainer.average_best=1 data.num_workers=0")  # fmt: skip


def _run(script: Path, *args: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune")
    data, exp = tmp / "data", tmp / "exp"
    _run(EGS / "s2t1" / "run.sh", "--data", str(data), "--exp", str(tmp / "s2t"), "--hours",
         "0.02", "--stage", "1", "--stop_stage", "2")  # fmt: skip
    base = exp / "base"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    train = [sys.executable, "-m", "speechkit.bin.train", "--config",
             str(EGS.parents[1] / "conf" / "s2t" / "phrasebook_tiny.yaml"), "--train-cuts",
             str(data / "cuts_train.jsonl.gz"), "--tokenizer", str(data / "tokenizer"), "--out",
             str(base), "--set", *TINY.split()]  # fmt: skip
    proc = subprocess.run(train, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # --contexts: an empty directory, so no speaker store of the developer's is read (these
    # arms need none)
    _run(EGS / "prune1" / "run.sh", "--data", str(data), "--exp", str(exp), "--base",
         str(base / "model_avg.pt"), "--results", str(tmp / "RESULTS.md"), "--arms",
         "full,static,dyn,dyn_lang", "--seeds", "0", "--steps", "3", "--settle", "1",
         "--bench_utts", "3",
         "--beam", "2", "--stage", "5", "--prune_args", "data.num_workers=0",
         "--contexts", str(tmp / "contexts"))  # fmt: skip
    return tmp


def test_arms_decode_at_the_budget_and_report(recipe):
    exp = recipe / "exp"
    for arm in ("full", "static", "dyn", "dyn_lang"):  # joint CTC (the recipe's ctc_weight)
        decoded = exp / arm / "s0" / "decode_test_seen_ctc0.3"
        stats = json.loads((decoded / "decode_stats.json").read_text())
        assert stats["gates"]["gflops_enc"] > 0 and stats["options"]["ctc_weight"] == 0.3, arm
        assert (decoded / "scores.json").is_file()
    oracle = exp / "dyn_lang" / "s0" / "decode_test_novel_ctc0.3_oracle"
    assert (oracle / "scores.json").is_file()
    bench = json.loads((exp / "dyn" / "s0" / "bench_test_seen.json").read_text())
    assert bench["batch1"]["rtfx_gated"] > 0 and bench["batched"]["rtfx_full"] > 0
    text = (recipe / "RESULTS.md").read_text()
    assert "| dyn_lang (oracle language) |" in text and "gates_dyn.png" in text
    full = next(line for line in text.splitlines() if line.startswith("| full |"))
    assert full.split("|")[3].strip() not in ("", "-")  # the WER of its joint-CTC decodes
    assert (recipe / "gates_dyn.png").is_file()
    # per background event too (the corpus records each cut's event); no speaker store: no
    # speaker picture
    assert "gates_dyn_event.png" in text and (recipe / "gates_dyn_event.png").is_file()
    assert not (recipe / "gates_dyn_speaker.png").exists()


def test_gated_arms_search_then_settle_in_the_same_number_of_updates(recipe):
    exp = recipe / "exp"

    def config(run: Path) -> dict:
        return yaml.safe_load((run / "config.yaml").read_text())

    full = config(exp / "full" / "s0")
    assert full["trainer"]["max_steps"] == 3 and not (exp / "full" / "s0" / "search").exists()
    for arm in ("static", "dyn", "dyn_lang"):
        search, settled = config(exp / arm / "s0" / "search"), config(exp / arm / "s0")
        assert (search["trainer"]["max_steps"], settled["trainer"]["max_steps"]) == (2, 1), arm
        assert not search["prune"]["settle"] and settled["prune"]["settle"], arm
        # the recipe's settle_args
        assert settled["optim"]["lr"] == 0.0001 != search["optim"]["lr"], arm
        # gate_init full (the default): the search starts from the seed's full fine-tune
        log = (exp / arm / "s0" / "search" / "train.log").read_text()
        assert f"--init {exp / 'full' / 's0' / 'model_avg.pt'}" in log, arm


def test_static_arm_exports_a_plain_model(recipe):
    packed = recipe / "exp" / "static" / "s0" / "packed_b0.5"
    assert load_pretrained(packed).model_type == "s2t"
