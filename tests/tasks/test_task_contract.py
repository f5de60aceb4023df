"""The task contract through the one trainer and the one entry point: a two-optimiser
adversarial task (tests/tasks/toy_gan.py) trains with ``speechkit.bin.train``, is killed mid-run
(SIGKILL) and resumes to exactly the weights of an uninterrupted run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

sys.path.insert(0, str(Path(__file__).parent))
import toy_gan  # noqa: E402

from speechkit.tasks import TASKS, get_task  # noqa: E402
from speechkit.tasks.base import OptimizerSpec  # noqa: E402
from speechkit.train.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
YAML = """
task: toy_gan
disc_every: 2
disc_start: 1
trainer: {max_epochs: 3, max_steps: 10, valid_every_steps: 3, log_every_steps: 1, device: cpu,
          num_threads: 1, keep_checkpoints: 10, average_best: 2, amp: "off"}
"""
RUN = "import sys, toy_gan; from speechkit.bin.train import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0) for i in range(14))
    cuts.to_file(root / "cuts.jsonl.gz")
    (root / "gan.yaml").write_text(YAML)
    return root


def _train(setup: Path, out: Path, *extra: str, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT)]))
    env["TOY_GAN_KILL_AT"] = str(kill_at)
    argv = ["--config", str(setup / "gan.yaml"), "--train-cuts", str(setup / "cuts.jsonl.gz"),
            "--dev-cuts", str(setup / "cuts.jsonl.gz"), "--out", str(out), *extra]  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", RUN, *argv], env=env, capture_output=True, text=True, timeout=300
    )


def test_killed_two_optimiser_run_resumes_to_the_uninterrupted_weights(setup):
    full = _train(setup, setup / "full")
    assert full.returncode == 0, full.stderr[-2000:]
    killed = _train(setup, setup / "killed", kill_at=12)  # in update 8, mid epoch 2
    assert killed.returncode == -9  # SIGKILL: no clean save
    survivors = list_checkpoints(setup / "killed" / "checkpoints")
    # 4 batches an epoch: validations at steps 3 and 6 (mid-epoch), the end of epoch 1 at 4
    assert [p.name for p in survivors] == ["step-3.pt", "step-4.pt", "step-6.pt"]
    assert not load_checkpoint(survivors[-1])["epoch_done"]
    assert not list((setup / "killed" / "checkpoints").glob("*.tmp"))
    resumed = _train(setup, setup / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    ref = load_checkpoint(setup / "full" / "checkpoints" / "step-10.pt")
    got = load_checkpoint(setup / "killed" / "checkpoints" / "step-10.pt")
    for name, p in ref["model"].items():
        torch.testing.assert_close(got["model"][name], p, rtol=0, atol=0)
    # Both optimisers' states are in the checkpoint and were restored: the discriminator
    # stepped on updates 1, 3, 5, 7, 9 (every 2 from update 1), the generator on all ten.
    assert set(ref["optimizers"]) == {"gen", "disc"}
    steps = {
        n: int(next(iter(ref["optimizers"][n]["state"].values()))["step"]) for n in ("gen", "disc")
    }
    assert steps == {"gen": 10, "disc": 5}
    assert (
        got["optimizers"]["disc"]["state"][0]["step"]
        == ref["optimizers"]["disc"]["state"][0]["step"]
    )

    # Logged columns are what the task returned, per optimiser, plus lr and grad norm of each.
    with open(setup / "full" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    for column in ("gen_loss", "gen_adv", "gen_moment", "disc_loss", "disc_real_score",
                   "gen_lr", "disc_lr", "gen_grad_norm", "disc_grad_norm"):  # fmt: skip
        assert column in rows[0], column
    assert [r["disc_loss"] != "" for r in rows[:3]] == [False, True, False]
    assert (setup / "full" / "model_avg.pt").is_file()


def test_generator_loss_leaves_the_discriminator_gradients_alone(setup):
    """While the generator's step runs, the discriminator's parameters collect no gradient,
    although the generator's loss flows through the discriminator."""
    from speechkit.tasks.base import TaskInputs
    from speechkit.train.trainer import TrainData, Trainer

    task = toy_gan.ToyGanTask(toy_gan.ToyGanConfig(), TaskInputs())
    model = task.build_model()
    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0) for i in range(4))
    loader, sampler = task.build_dataloader(cuts, True, seed=0)
    trainer = Trainer(task, model, TrainData(loader, sampler), task.cfg.trainer, setup / "unit")
    batch = next(iter(loader))
    trainer.step = 0  # the discriminator is not due (disc_start 1): only the generator runs
    stats, why = trainer._micro_step(batch)
    assert why is None and "gen_loss" in stats and "disc_loss" not in stats
    assert all(p.grad is None for p in model.disc.parameters())
    assert all(p.grad is not None for p in model.gen.parameters())
    assert all(p.requires_grad for p in model.parameters())  # flags restored afterwards


def test_registry_and_optimizer_spec_rules():
    assert get_task("toy_gan") is toy_gan.ToyGanTask and {"s2t", "whisper"} <= set(TASKS)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_task("nope")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    spec = OptimizerSpec("d", opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
                         every=3, start_step=2)  # fmt: skip
    assert [u for u in range(10) if spec.due(u)] == [2, 5, 8]
    with pytest.raises(ValueError, match="every >= 1"):
        OptimizerSpec("d", opt, spec.scheduler, every=0)
