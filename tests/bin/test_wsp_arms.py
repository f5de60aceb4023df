"""Tests for speechkit/bin/wsp_arms.py: every arm gets the same updates; the train commands."""

import argparse
import sys
from pathlib import Path

import pytest

from speechkit.bin import wsp_arms
from speechkit.bin.wsp_arms import Grid, plan


def _grid(**kw):
    base = dict(splits=Path("s"), exp=Path("e"), budgets=["2", "10"], conditions=["real", "syn25"],
                arms=["gold", "mix", "wsp", "wsp_ctc", "allgold"], seeds=[0, 1], steps=600,
                pretrain_steps=400)  # fmt: skip
    return Grid(**{**base, **kw})


def test_every_arm_has_the_same_number_of_updates():
    runs = plan(_grid())
    assert {r.updates for r in runs} == {600}
    wsp = next(r for r in runs if r.arm == "wsp_ctc")
    pre, ft = wsp.steps
    assert (pre.steps, pre.text_field, pre.init) == (400, "weak_text", None)
    assert pre.train_cuts == [Path("s/gold2/weak_real_ctc.jsonl.gz")]
    assert (ft.steps, ft.text_field, ft.init) == (200, "text", pre.out / "model_avg.pt")
    assert ft.train_cuts == [Path("s/gold2/gold.jsonl.gz")] and wsp.model == ft.out / "model_avg.pt"
    mix = next(r for r in runs if r.arm == "mix")
    assert mix.steps[0].train_cuts == [
        Path("s/gold2/gold.jsonl.gz"),
        Path("s/gold2/weak_real.jsonl.gz"),
    ]
    assert mix.steps[0].text_field == "weak_text"


def test_mixft_mixes_for_the_pretraining_updates_then_fine_tunes_on_gold():
    (run,) = plan(_grid(budgets=["5"], conditions=["realsel"], arms=["mixft"], seeds=[1]))
    pre, ft = run.steps
    assert pre.train_cuts == [Path("s/gold5/gold.jsonl.gz"), Path("s/gold5/weak_realsel.jsonl.gz")]
    assert (pre.steps, pre.text_field, pre.pretrain) == (400, "weak_text", True)
    assert (ft.train_cuts, ft.steps, ft.init) == (
        [Path("s/gold5/gold.jsonl.gz")],
        200,
        pre.out / "model_avg.pt",
    )
    assert ft.finetune and run.dir == Path("e/gold5/realsel/mixft/s1")


def test_arms_without_a_condition_are_planned_once():
    runs = plan(_grid())
    dirs = [r.dir for r in runs]
    assert len(dirs) == len(set(dirs))
    # gold: per budget and seed; allgold: per seed; the others per budget, condition and seed.
    assert sum(r.arm == "gold" for r in runs) == 4 and sum(r.arm == "allgold" for r in runs) == 2
    assert sum(r.arm == "wsp" for r in runs) == 8


@pytest.mark.parametrize("kw", [{"pretrain_steps": 600}, {"pretrain_steps": 0}, {"arms": ["nope"]}])
def test_bad_grids_are_refused(kw):
    with pytest.raises(ValueError):
        _grid(**kw)


def test_dry_run_prints_reproducible_train_commands(capsys):
    argv = ["train", "--config", "c.yaml", "--tokenizer", "tok", "--splits", "s", "--exp", "e",
            "--dev-cuts", "dev.jsonl.gz", "--budgets", "10", "--arms", "wsp", "--steps", "60",
            "--pretrain-steps", "40", "--set", "trainer.num_threads=1",
            "--finetune-set", "optim.lr=0.001", "--dry-run"]  # fmt: skip
    assert wsp_arms.main(argv) == 0
    pre, ft = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("+ ")]
    assert "--train-cuts s/gold10/weak_real.jsonl.gz" in pre and "--tokenizer tok" in pre
    assert "trainer.max_steps=40 data.text_field=weak_text trainer.seed=0" in pre
    assert "trainer.num_threads=1" in pre and "optim.lr=0.001" not in pre
    assert "--init e/gold10/real/wsp/s0/pre/model_avg.pt" in ft and "--tokenizer" not in ft
    assert "trainer.max_steps=20 data.text_field=text" in ft and ft.endswith("optim.lr=0.001")
    # The pretraining's model is its newest checkpoints; the fine-tuned one is chosen as configured.
    assert pre.endswith("trainer.select_by=step trainer.select_mode=max")
    assert "select_by" not in ft


def test_pretrain_set_replaces_the_default_selection(capsys):
    argv = ["train", "--config", "c.yaml", "--tokenizer", "tok", "--splits", "s", "--exp", "e",
            "--dev-cuts", "dev.jsonl.gz", "--budgets", "10", "--arms", "wsp,gold", "--steps", "60",
            "--pretrain-steps", "40", "--pretrain-set", "trainer.select_by=acc",
            "trainer.select_mode=max", "--dry-run"]  # fmt: skip
    assert wsp_arms.main(argv) == 0
    pre, ft, gold = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("+ ")]
    assert pre.endswith("trainer.select_by=acc trainer.select_mode=max")
    assert "select_by" not in gold and "select_by" not in ft


def test_decode_needs_test_cuts():
    with pytest.raises(SystemExit):
        wsp_arms.main(["decode", "--splits", "s", "--exp", "e", "--budgets", "10"])


def _run(tmp_path, name):
    return wsp_arms.Run("gold", "10", "", 0, tmp_path / name, [])


def _script(code):
    return [sys.executable, "-c", code]


def test_jobs_run_side_by_side_each_with_its_log(tmp_path):
    # Each run waits for the other to have started: only concurrent runs both finish.
    wait = (
        "import pathlib, sys, time; me, other = sys.argv[1:]; pathlib.Path(me).touch(); "
        "t = time.time()\n"
        "while not pathlib.Path(other).exists():\n"
        "    time.sleep(0.05)\n"
        "    if time.time() - t > 30: sys.exit(3)\n"
        "print('ran', me)"
    )
    a, b = str(tmp_path / "a.started"), str(tmp_path / "b.started")
    work = [(_run(tmp_path, "ra"), [_script(wait) + [a, b]]),
            (_run(tmp_path, "rb"), [_script(wait) + [b, a]])]  # fmt: skip
    args = argparse.Namespace(jobs=2, dry_run=False, action="train")
    wsp_arms._execute(work, args)
    assert "ran " + a in (tmp_path / "ra" / "wsp_arms_train.log").read_text()
    assert "ran " + b in (tmp_path / "rb" / "wsp_arms_train.log").read_text()


def test_a_failed_job_does_not_stop_the_others_and_is_named(tmp_path, capsys):
    work = [
        (_run(tmp_path, "bad"), [_script("import sys; print('boom'); sys.exit(2)"), _script("")]),
        (_run(tmp_path, "good"), [_script("print('one')"), _script("print('two')")]),
    ]
    args = argparse.Namespace(jobs=2, dry_run=False, action="decode")
    with pytest.raises(SystemExit, match=r"1 of 2 runs failed") as e:
        wsp_arms._execute(work, args)
    bad_log = tmp_path / "bad" / "wsp_arms_decode.log"
    assert str(bad_log) in str(e.value) and "boom" in bad_log.read_text()
    # The failed run stopped at its failing command; the other ran both of its commands.
    assert bad_log.read_text().count("+ ") == 1
    good = (tmp_path / "good" / "wsp_arms_decode.log").read_text()
    assert "one" in good and "two" in good
    assert f"done: {tmp_path / 'good'}" in capsys.readouterr().out
