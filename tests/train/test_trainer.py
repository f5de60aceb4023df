"""Trainer behaviour with a tiny stand-in model and a real (checkpointable) lhotse sampler."""

from __future__ import annotations

import csv
import logging

import pytest
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicCutSampler
from lhotse.testing.dummies import dummy_cut
from torch import nn
from torch.utils.data import DataLoader, Dataset

from speechkit.config import ConfigError
from speechkit.tasks.base import OptimizerSpec, Task
from speechkit.train.checkpoint import list_checkpoints, load_checkpoint
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.optim import build_optimizer, build_scheduler
from speechkit.train.trainer import TrainData, Trainer, resolve_amp

N_FEATS = 4


class ToyDataset(Dataset):
    """Maps a CutSet batch to the batch layout; training feats get noise from the global RNG
    (like SpecAugment does), so resuming must restore RNG state to reproduce a run."""

    def __init__(self, train: bool) -> None:
        self.train = train

    def __getitem__(self, cuts: CutSet) -> dict:
        ids = [c.id for c in cuts]
        lens = torch.tensor([int(c.duration * 10) for c in cuts])
        feats = torch.zeros(len(ids), int(lens.max()), N_FEATS)
        for i, cut_id in enumerate(ids):
            g = torch.Generator().manual_seed(int(cut_id.split("-")[-1]))
            feats[i, : lens[i]] = torch.randn(int(lens[i]), N_FEATS, generator=g)
        if self.train:
            feats = feats + 0.01 * torch.randn_like(feats)
        ys = torch.zeros(len(ids), 3, dtype=torch.long)
        return {
            "feats": feats,
            "feat_lens": lens,
            "ys_in": ys,
            "ys_out": ys,
            "ctc_targets": ys,
            "ctc_target_lens": torch.full((len(ids),), 3),
            "cut_ids": ids,
        }


class ToyModel(nn.Module):
    """Regresses the mean of each utterance's first feature; NaN loss on chosen calls."""

    INPUTS = ("feats", "feat_lens", "ys_in", "ys_out", "ctc_targets", "ctc_target_lens")

    def __init__(self, nan_calls: set[int] = frozenset(), interrupt_call: int = -1) -> None:
        super().__init__()
        self.proj = nn.Linear(N_FEATS, 1)
        self.norm = nn.LayerNorm(N_FEATS)
        self.drop = nn.Dropout(0.1)
        self.nan_calls, self.interrupt_call, self.calls = nan_calls, interrupt_call, 0
        self.train_dtypes: set[torch.dtype] = set()  # dtypes of the training forward's outputs

    def forward(self, feats, feat_lens, ys_in, ys_out, ctc_targets, ctc_target_lens):
        if self.training:
            self.calls += 1
            if self.calls == self.interrupt_call:
                raise KeyboardInterrupt
        mask = (torch.arange(feats.shape[1])[None] < feat_lens[:, None]).float()
        out = self.proj(self.drop(self.norm(feats)))
        if self.training:
            self.train_dtypes.add(out.dtype)
        pred = (out.float().squeeze(-1) * mask).sum(1) / feat_lens
        target = (feats[..., 0] * mask).sum(1) / feat_lens + 1.0
        loss = ((pred - target) ** 2).mean()
        if self.training and self.calls in self.nan_calls:
            loss = loss * float("nan")
        acc = (torch.abs(pred - target) < 0.1).float().mean()
        return {
            "loss": loss,
            "loss_att": loss,
            "loss_ctc": loss * 0,
            "acc": acc,
            "num_tokens": torch.tensor(len(feat_lens)),
        }


class ToyTask(Task):
    """One optimiser over the whole toy model; ``run_config`` as given (compared on resume)."""

    name = "toy"
    config_class = dict

    def __init__(self, run_config: dict, optim: OptimConfig) -> None:
        super().__init__(run_config)
        self.optim = optim

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        raise NotImplementedError  # the tests hand the trainer their loaders

    def build_model(self):
        raise NotImplementedError

    def batch_lengths(self, batch):
        return batch["feat_lens"].tolist()

    def configure_optimizers(self, model, total_steps):
        opt = build_optimizer(model, self.optim)
        sched = build_scheduler(opt, self.optim, total_steps)
        return [OptimizerSpec("model", opt, sched, grad_clip=self.optim.grad_clip)]

    def training_step(self, model, batch, optimizer):
        out = model(*(batch[k] for k in ToyModel.INPUTS))
        out.pop("num_tokens")
        return out

    def validation_step(self, model, batch):
        out = model(*(batch[k] for k in ToyModel.INPUTS))
        return {"loss": out["loss"], "acc": out["acc"], "weight": out["num_tokens"]}

    def run_config(self):
        return self.cfg

    def checkpoint_extras(self):
        return {"tokenizer": {"dummy": True}}


def make_data(n_cuts: int = 16) -> TrainData:
    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0 + 0.25 * (i % 4)) for i in range(n_cuts))
    sampler = DynamicCutSampler(cuts, max_duration=6.0, shuffle=True, seed=3)
    loader = DataLoader(ToyDataset(train=True), sampler=sampler, batch_size=None)
    dev_sampler = DynamicCutSampler(cuts.subset(first=4), max_duration=6.0)
    dev = DataLoader(ToyDataset(train=False), sampler=dev_sampler, batch_size=None)
    return TrainData(loader, sampler, dev)


def make_trainer(out, model=None, run_config=None, **trainer_kw) -> Trainer:
    torch.manual_seed(0)
    model = model if model is not None else ToyModel()
    kw = {
        "max_epochs": 2,
        "log_every_steps": 1,
        "device": "cpu",
        "keep_checkpoints": 10,
    }
    kw.update(trainer_kw)
    optim = OptimConfig(lr=0.05, warmup_steps=2, scheduler="warmup_linear")
    run_config = run_config or {"optim": {"lr": 0.05}, "trainer": {"max_steps": 0}}
    task = ToyTask(run_config, optim)
    return Trainer(task, model, make_data(), TrainerConfig(**kw), out, total_steps=20)


def test_fit_writes_checkpoints_logs_and_learns(tmp_path):
    trainer = make_trainer(tmp_path)
    first = trainer.model.proj.bias.detach().clone()
    summary = trainer.fit()
    assert summary["epoch"] == 3 and summary["step"] > 4
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert len(ckpts) == 2  # one per epoch
    ckpt = load_checkpoint(ckpts[-1])
    for key in (
        "model",
        "optimizers",
        "schedulers",
        "scalers",
        "sampler",
        "step",
        "epoch",
        "config",
        "tokenizer",
        "speechkit_version",
        "valid_loss",
    ):
        assert key in ckpt
    assert ckpt["step"] == summary["step"] and ckpt["epoch_done"]
    assert ckpt["valid_loss"] is not None and ckpt["valid_loss"] >= 0
    with open(tmp_path / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    # the columns are what the task returns, plus the trainer's own
    columns = ["step", "epoch", "loss", "loss_att", "loss_ctc", "acc", "lr", "grad_norm"]
    assert list(rows[0]) == [*columns, "elapsed"]
    assert [int(r["step"]) for r in rows] == list(range(1, summary["step"] + 1))
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert not torch.equal(first, trainer.model.proj.bias.detach())
    assert (tmp_path / "tensorboard").is_dir()


def test_stop_at_a_validation_step_writes_its_checkpoint_once(tmp_path, caplog):
    trainer = make_trainer(tmp_path, max_steps=4, valid_every_steps=2)
    with caplog.at_level(logging.INFO, logger="speechkit.train.trainer"):
        assert trainer.fit()["step"] == 4
    saved = [
        r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("saved")
    ]
    assert [p.rsplit("/", 1)[-1] for p in saved] == ["step-2.pt", "step-4.pt"]
    assert load_checkpoint(list_checkpoints(tmp_path / "checkpoints")[-1])["step"] == 4


def test_resolve_amp_per_device(caplog):
    cpu = torch.device("cpu")
    assert resolve_amp("off", cpu) is None and resolve_amp("auto", cpu) is None
    assert resolve_amp("bf16", cpu) == torch.bfloat16
    with caplog.at_level(logging.WARNING):
        assert resolve_amp("fp16", cpu) is None  # fp16 needs a GPU (and its loss scaler)
    assert "needs a CUDA GPU" in caplog.text


def test_bf16_mixed_precision_trains_with_fp32_weights(tmp_path):
    """amp=bf16: the forward runs under autocast (Linear outputs bf16), the weights, optimizer
    state and checkpoint stay fp32, and the loss still goes down."""
    trainer = make_trainer(tmp_path, amp="bf16", max_steps=8)
    assert trainer.fit()["step"] == 8
    assert trainer.model.train_dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "checkpoints")[-1])
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())
    with open(tmp_path / "train_log.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < losses[0]
    off = make_trainer(tmp_path / "off", amp="off", max_steps=1)
    off.fit()
    assert off.model.train_dtypes == {torch.float32}


@pytest.mark.cuda  # fp16 loss scaling needs a CUDA GPU (skipped without one)
def test_fp16_mixed_precision_on_gpu(tmp_path):
    trainer = make_trainer(tmp_path, amp="fp16", max_steps=6, device="cuda")
    assert trainer.fit()["step"] == 6
    assert trainer.model.train_dtypes == {torch.float16}
    assert trainer.scalers["model"].is_enabled()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_resume_mid_epoch_reproduces_uninterrupted_run(tmp_path):
    full = make_trainer(tmp_path / "full", max_steps=7)
    full.fit()
    part = make_trainer(tmp_path / "part", max_steps=3)
    assert part.fit()["step"] == 3
    assert not load_checkpoint(list_checkpoints(tmp_path / "part/checkpoints")[-1])["epoch_done"]
    resumed = make_trainer(tmp_path / "part", max_steps=7)  # max_steps may change on resume
    summary = resumed.fit(resume=True)
    assert summary["step"] == 7
    for name, p in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], p, rtol=0, atol=0)
    with open(tmp_path / "part/train_log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 8))


def test_resume_with_different_config_names_the_keys(tmp_path):
    cfg = {"optim": {"lr": 0.05}, "trainer": {"max_steps": 2}, "model": {"d_model": 8}}
    make_trainer(tmp_path, run_config=cfg, max_steps=2).fit()
    changed = {
        "optim": {"lr": 0.01},
        "trainer": {"max_steps": 4},
        "model": {"d_model": 16},
    }
    with pytest.raises(ConfigError, match=r"model\.d_model, optim\.lr") as err:
        make_trainer(tmp_path, run_config=changed, max_steps=4).fit(resume=True)
    assert "trainer.max_steps" not in str(err.value).split("Only")[0]
    allowed = {
        "optim": {"lr": 0.05},
        "trainer": {"max_steps": 4},
        "model": {"d_model": 8},
    }
    assert make_trainer(tmp_path, run_config=allowed, max_steps=4).fit(resume=True)["step"] == 4


def test_nan_losses_are_skipped_and_logged(tmp_path, caplog):
    trainer = make_trainer(tmp_path, model=ToyModel(nan_calls={2, 3}), max_epochs=1)
    with caplog.at_level(logging.WARNING):
        summary = trainer.fit()
    assert summary["bad_steps"] == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    warnings = [r.getMessage() for r in caplog.records if "skipped the update" in r.getMessage()]
    assert len(warnings) == 2 and "dummy-mono-cut-" in warnings[0]


def test_too_many_consecutive_nan_losses_abort(tmp_path):
    trainer = make_trainer(tmp_path, model=ToyModel(nan_calls=set(range(1, 100))), max_bad_steps=3)
    with pytest.raises(RuntimeError, match="3 consecutive non-finite"):
        trainer.fit()


def test_keyboard_interrupt_saves_a_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, model=ToyModel(interrupt_call=4))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    ckpts = list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in ckpts] == ["step-3.pt"]
    assert load_checkpoint(ckpts[0])["valid_loss"] is None
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path, monkeypatch):
    clock = iter(range(0, 10**6, 10))  # every reading of the clock advances it by 10 s
    monkeypatch.setattr("speechkit.train.trainer.time.monotonic", lambda: next(clock))
    trainer = make_trainer(tmp_path, max_minutes=1.0, max_epochs=50)
    summary = trainer.fit()
    assert "max_minutes" in summary["stop_reason"] and 0 < summary["step"] < 20
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "checkpoints")[-1])
    assert ckpt["step"] == summary["step"] and ckpt["valid_loss"] is not None


def test_gradient_accumulation_counts_updates(tmp_path):
    plain = make_trainer(tmp_path / "a", max_epochs=1)
    accumulated = make_trainer(tmp_path / "b", max_epochs=1, accum_grad=2)
    n_plain = plain.fit()["step"]
    assert accumulated.fit()["step"] == (n_plain + 1) // 2


def _ranked(tmp_path):
    """``{step: (valid loss, select score)}`` of the saved checkpoints."""
    out = {}
    for p in list_checkpoints(tmp_path / "checkpoints"):
        ck = load_checkpoint(p)
        out[ck["step"]] = (ck["valid_loss"], ck["select_score"])
    return out


@pytest.mark.parametrize(("select_by", "mode"), [("loss", "min"), ("acc", "max"), ("step", "max")])
def test_select_by_ranks_checkpoints_for_retention_and_averaging(tmp_path, select_by, mode):
    from speechkit.train.checkpoint import best_checkpoints

    trainer = make_trainer(
        tmp_path, max_steps=8, valid_every_steps=2, select_by=select_by, select_mode=mode
    )
    trainer.fit()
    saved = _ranked(tmp_path)
    assert {2, 4, 6, 8} <= set(saved)  # and the epoch ends
    rows = list(csv.DictReader(open(tmp_path / "valid_log.csv")))
    figures = {int(r["step"]): float(r[f"valid_{select_by}"]) for r in rows if select_by != "step"}
    for step, (_, score) in saved.items():
        value = float(step) if select_by == "step" else figures[step]
        assert score == pytest.approx(value if mode == "min" else -value, rel=1e-4)  # csv: 6 digits
    best = [int(p.stem.split("-")[1]) for p in best_checkpoints(tmp_path / "checkpoints", 2)]
    order = sorted(saved, key=lambda s: saved[s][1])
    assert best == order[:2]
    if select_by == "step":
        assert best == [8, 6]


def test_select_by_an_unknown_figure_saves_then_stops_with_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=8, valid_every_steps=2, select_by="bleu")
    with pytest.raises(ConfigError, match=r"select_by='bleu'.*\['acc', 'loss'\]"):
        trainer.fit()
    # The updates made before the first validation are on disk, unranked.
    saved = _ranked(tmp_path)
    assert list(saved) == [2] and saved[2][1] is None


def test_select_mode_is_checked():
    with pytest.raises(ConfigError, match="select_mode"):
        TrainerConfig(select_mode="best")
