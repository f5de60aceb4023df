"""End to end: egs/phrasebook/wsp1/run.sh on a tiny corpus, on CPU, every stage.

A few dozen utterances and two-update trainings of a very small model: this checks that the
stages fit together (corpus -> seed recogniser -> weak transcripts, real and synthetic -> gold
splits -> CTC filter -> arms -> hypotheses -> scores -> tables and plots), not the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "phrasebook" / "wsp1"
TINY = " ".join(
    [
        "model.d_model=32",
        "model.n_heads=2",
        "model.encoder_layers=1",
        "model.encoder_ffn=64",
        "model.cgmlp_units=64",
        "model.decoder_layers=1",
        "model.decoder_ffn=64",
        "trainer.average_best=1",
    ]
)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wsp")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data", str(tmp / "data"), "--exp", str(tmp / "exp")]
    cmd += ["--results", str(tmp / "RESULTS.md"), "--hours", "0.03", "--seed_steps", "2"]
    # A two-update seed recogniser says little: its weak transcripts may all be dropped, so the
    # arms train on synthetic ones.
    cmd += [
        "--syn_wers",
        "30",
        "--conditions",
        "syn30",
        "--arms",
        "gold,wsp_ctc",
        "--whisper",
        "false",
    ]
    cmd += ["--budgets", "25", "--steps", "3", "--pretrain_steps", "2", "--train_args", TINY]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp


def test_weak_transcripts_are_written_with_their_source_and_wer(recipe):
    data = recipe / "data"
    for name in ("real", "syn30"):
        report = json.loads((data / "weak" / f"{name}.json").read_text())
        assert (
            report["num_kept"] + sum(v for k, v in report["dropped"].items() if "/" not in k)
            == report["num_in"]
        )
        assert "all" in report["wer"]["weak_text"]
        for cut in CutSet.from_file(data / "weak" / f"{name}.jsonl.gz") or []:
            assert cut.supervisions[0].custom["weak_source"] in ("s2t-seed", "synthetic-wer30")
            assert cut.supervisions[0].custom["weak_text"].strip()
    assert "| s2t-seed | all |" in (recipe / "RESULTS.md").read_text()


def test_realsel_keeps_only_the_sources_the_dev_set_admits(recipe):
    weak = recipe / "data" / "weak"
    sel = json.loads((weak / "realsel.json").read_text())
    assert sel["max_dev_wer"] == 50 and set(sel["admitted"]) == {"s2t-seed"}
    dev_wer = sel["dev_wer"]["s2t-seed"]
    assert dev_wer["all"]["utts"] == len(CutSet.from_file(recipe / "data/corpus/cuts_dev.jsonl.gz"))
    for cut in CutSet.from_file(weak / "realsel.jsonl.gz") or []:  # empty: nothing admitted
        lang = cut.supervisions[0].language
        assert lang in sel["admitted"]["s2t-seed"] and dev_wer[lang]["rate"] <= 50
    rejected = sum(c for k, c in sel["dropped"].items() if k.startswith("source_rejected/"))
    assert rejected == sum(
        e["utts"] for lg, e in sel["wer"]["s2t-seed"].items()
        if lg != "all" and lg not in sel["admitted"]["s2t-seed"]
    )  # fmt: skip
    assert (recipe / "data/splits/gold25/weak_realsel.jsonl.gz").is_file()
    assert "Sources chosen by their WER on the gold dev set" in (recipe / "RESULTS.md").read_text()


def test_splits_keep_gold_and_weak_apart(recipe):
    split = recipe / "data" / "splits" / "gold25"
    gold = {c.id for c in CutSet.from_file(split / "gold.jsonl.gz")}
    for name in ("weak_syn30", "weak_syn30_ctc"):
        weak = list(CutSet.from_file(split / f"{name}.jsonl.gz"))
        assert weak and gold.isdisjoint(c.id for c in weak)
        assert all("weak_text" in c.supervisions[0].custom for c in weak)
    assert all(
        "weak_text" not in (c.supervisions[0].custom or {})
        for c in CutSet.from_file(split / "gold.jsonl.gz")
    )
    report = json.loads((split / "weak_syn30_ctc.json").read_text())
    assert 0 < report["fraction_kept"]["all"] <= 1


def test_every_arm_is_trained_decoded_scored_and_reported(recipe):
    exp = recipe / "exp"
    runs = [exp / "gold25/gold/s0", exp / "gold25/syn30/wsp_ctc/s0"]
    for run in runs:
        for test in ("cuts_test_seen", "cuts_test_novel"):
            assert (run / f"decode_{test}" / "scores.json").is_file(), run
    done = json.loads((exp / "gold25/syn30/wsp_ctc/s0/ft/train_done.json").read_text())
    assert done["summary"]["step"] == 1  # 3 updates: 2 on weak text, then 1 on gold
    results = (recipe / "RESULTS.md").read_text()
    assert "### Weak transcripts: syn30" in results
    assert "| 25 | wsp_ctc |" in results and "command:" in results
    for png in ("wsp_wer_vs_gold.png", "wsp_wer_vs_weak_wer.png"):
        assert (recipe / png).read_bytes()[:4] == b"\x89PNG"
