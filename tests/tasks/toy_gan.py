"""A two-optimiser adversarial task for testing the task contract (imported by test_base.py and
by the training subprocesses it starts; registered as ``task: toy_gan``).

The generator maps noise (B, 4) to fake samples; the discriminator scores real samples (a fixed
vector per cut, plus noise) against fakes. The generator's loss flows through the
discriminator, whose parameters must not collect gradients from it; the discriminator steps
every second update after ``disc_start`` updates. ``TOY_GAN_KILL_AT=N`` SIGKILLs the process at
the N-th training forward, as a crash or a killed job would.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from lhotse.dataset import DynamicCutSampler
from torch import nn
from torch.utils.data import DataLoader, Dataset

from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, Task
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.distributed import unwrap
from speechkit.train.optim import build_optimizer, build_scheduler

DIM = 4


def _constant(lr: float) -> OptimConfig:
    return OptimConfig(lr=lr, warmup_steps=0, scheduler="constant", weight_decay=0.0)


@dataclass
class ToyGanConfig:
    task: Literal["toy_gan"] = "toy_gan"
    gen: OptimConfig = field(default_factory=lambda: _constant(0.01))
    disc: OptimConfig = field(default_factory=lambda: _constant(0.02))
    disc_every: int = 2
    disc_start: int = 1
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


class ToyGanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gen = nn.Sequential(nn.Linear(DIM, 16), nn.Tanh(), nn.Linear(16, DIM))
        self.disc = nn.Sequential(nn.Linear(DIM, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        self.kill_at, self.calls = int(os.environ.get("TOY_GAN_KILL_AT", "0")), 0

    def forward(self, x: torch.Tensor, part: str) -> torch.Tensor:
        if self.training and part == "gen":
            self.calls += 1
            if self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.gen(x) if part == "gen" else self.disc(x).squeeze(-1)


class ToyGanData(Dataset):
    """Real samples: a fixed vector per cut id; noise from the global RNG (so a resume must
    restore the RNG to reproduce a run)."""

    def __getitem__(self, cuts) -> dict:
        real = []
        for cut in cuts:
            g = torch.Generator().manual_seed(int(cut.id.split("-")[-1]))
            real.append(torch.randn(DIM, generator=g) * 0.3 + 2.0)
        real = torch.stack(real)
        return {"real": real, "noise": torch.randn_like(real), "cut_ids": [c.id for c in cuts]}


@register_task
class ToyGanTask(Task):
    name = "toy_gan"
    config_class = ToyGanConfig
    find_unused_parameters = True

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        sampler = DynamicCutSampler(
            cuts, max_duration=4.0, shuffle=train, seed=seed, world_size=world_size, rank=rank
        )
        return DataLoader(ToyGanData(), sampler=sampler, batch_size=None), sampler

    def build_model(self) -> nn.Module:
        return ToyGanModel()

    def configure_optimizers(self, model, total_steps):
        m, cfg = unwrap(model), self.cfg
        gen, disc = build_optimizer(m.gen, cfg.gen), build_optimizer(m.disc, cfg.disc)
        return [
            OptimizerSpec("gen", gen, build_scheduler(gen, cfg.gen, total_steps)),
            OptimizerSpec(
                "disc",
                disc,
                build_scheduler(disc, cfg.disc, total_steps),
                grad_clip=1.0,
                every=cfg.disc_every,
                start_step=cfg.disc_start,
            ),
        ]

    def training_step(self, model, batch, optimizer):
        fake = model(batch["noise"], "gen")
        if optimizer == "disc":
            real_score, fake_score = model(batch["real"], "disc"), model(fake.detach(), "disc")
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
            return {"loss": loss, "real_score": real_score.mean()}
        adv = F.softplus(-model(fake, "disc")).mean()
        moment = F.mse_loss(fake.mean(0), batch["real"].mean(0))
        return {"loss": adv + moment, "adv": adv, "moment": moment}

    def validation_step(self, model, batch):
        fake = model(batch["noise"], "gen")
        moment = F.mse_loss(fake.mean(0), batch["real"].mean(0))
        return {"loss": moment, "weight": torch.tensor(float(len(fake)))}
