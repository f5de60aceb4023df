"""What the waveform GAN tasks share (the codec, ``tasks/codec.py``; the vocoder,
``tasks/vocoder.py``): random audio crops as batches, a generator and a discriminator optimiser,
hinge adversarial and feature-matching losses, and the discriminator step.

A subclass sets ``name``, ``config_class`` (with ``data``, ``trainer``, ``gen_optim``,
``disc_optim``, ``disc_every``, ``disc_start`` and ``model.sample_rate``), builds its model (a
module with ``generator``, ``discriminator`` and a ``disc_updates`` counter, called with
``part="disc"`` -> (logits per sub-discriminator, features per layer)), and implements
``regenerate(model, audio, lens)``: the generator's output for ``audio`` (B, S) without a
gradient, used when the discriminator steps on a batch the generator did not.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lhotse import CutSet
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.data.segments import split_supervisions
from speechkit.data.waves import build_wave_dataloader
from speechkit.nn.spectral_loss import MelLoss, MultiResolutionSTFTLoss
from speechkit.tasks.base import OptimizerSpec, Task, TaskInputs, read_cuts
from speechkit.train.config import OptimConfig
from speechkit.train.distributed import unwrap
from speechkit.train.optim import build_optimizer, build_scheduler

__all__ = ["WaveGANTask", "feature_matching", "gan_optim", "hinge_disc_loss"]


def gan_optim(lr: float) -> OptimConfig:
    """Adam(0.5, 0.9) at a constant ``lr``, the usual setting of audio GANs."""
    return OptimConfig(
        lr=lr,
        betas=(0.5, 0.9),
        eps=1e-8,
        weight_decay=0.0,
        scheduler="constant",
        warmup_steps=0,
        grad_clip=100.0,
    )


def hinge_disc_loss(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """Mean over sub-discriminators of relu(1 - D(real)) + relu(1 + D(fake))."""
    terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)]
    return sum(terms) / len(terms)


def feature_matching(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """Mean over every layer of every sub-discriminator of L1(fake, real) / mean |real|."""
    terms = [
        (f - r).abs().mean() / r.abs().mean().clamp(min=1e-5)
        for fs, rs in zip(fake, real)
        for f, r in zip(fs, rs)
    ]
    return sum(terms) / len(terms)


class WaveGANTask(Task):
    """Base of the waveform GAN tasks (module docstring)."""

    find_unused_parameters = True
    # whether ``build_model`` starts from ``inputs.init`` (a subclass that does sets it)
    takes_init: bool = False

    def __init__(self, cfg, inputs: TaskInputs | None = None) -> None:
        super().__init__(cfg, inputs)
        if inputs is not None and inputs.init and not self.takes_init:
            raise ConfigError(f"the {self.name} task trains from scratch; --init is not supported")
        self.stft_loss = MultiResolutionSTFTLoss()
        self.mel_loss = MelLoss(cfg.model.sample_rate)
        # (real crops, generated crops) of the generator's last step, for the discriminator's
        self._fake: tuple[Tensor, Tensor] | None = None

    # ---- data ------------------------------------------------------------------------

    def load_cuts(self, paths, train: bool) -> CutSet:
        return split_supervisions(read_cuts(paths))

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        return build_wave_dataloader(cuts, self.cfg.data, train, seed, rank, world_size)

    def total_steps(self, cuts: CutSet, world_size: int) -> int:
        if self.cfg.trainer.max_steps:
            return self.cfg.trainer.max_steps
        per_epoch = math.ceil(len(cuts) / (self.cfg.data.batch_size * world_size))
        return max(1, per_epoch * self.cfg.trainer.max_epochs // self.cfg.trainer.accum_grad)

    def batch_lengths(self, batch: dict) -> list[int]:
        return batch["audio_lens"].tolist()

    # ---- optimisation ----------------------------------------------------------------

    def gan_optimizers(
        self, generator: nn.Module, discriminator: nn.Module, total_steps: int
    ) -> list[OptimizerSpec]:
        """ "gen" every step; "disc" every ``disc_every`` steps from ``disc_start``."""
        cfg = self.cfg
        gen = build_optimizer(generator, cfg.gen_optim)
        disc = build_optimizer(discriminator, cfg.disc_optim)
        return [
            OptimizerSpec(
                "gen",
                gen,
                build_scheduler(gen, cfg.gen_optim, total_steps),
                grad_clip=cfg.gen_optim.grad_clip,
            ),
            OptimizerSpec(
                "disc",
                disc,
                build_scheduler(disc, cfg.disc_optim, total_steps),
                grad_clip=cfg.disc_optim.grad_clip,
                every=cfg.disc_every,
                start_step=cfg.disc_start,
            ),
        ]

    def adversarial(self, model: nn.Module, fake: Tensor, audio: Tensor) -> dict[str, Tensor]:
        """The generator's hinge and feature-matching losses on ``fake`` (B, S) against
        ``audio`` (B, S); empty until the discriminator has stepped once (an untrained
        discriminator's opinion is noise), or when both loss weights are 0."""
        w = self.cfg.loss
        if not (w.adv > 0 or w.feat > 0) or int(unwrap(model).disc_updates) == 0:
            return {}
        fake_logits, fake_feats = model(fake, part="disc")
        with torch.no_grad():
            _, real_feats = model(audio, part="disc")
        adv = sum(F.relu(1 - f).mean() for f in fake_logits) / len(fake_logits)
        return {"adv": adv, "feat": feature_matching(fake_feats, real_feats)}

    def regenerate(self, model: nn.Module, audio: Tensor, lens: Tensor) -> Tensor:
        raise NotImplementedError

    def disc_step(self, model: nn.Module, audio: Tensor, lens: Tensor) -> dict[str, Tensor]:
        """Hinge loss of the discriminator on ``audio`` and the generator's output for it."""
        if self._fake is not None and self._fake[0] is audio:
            fake = self._fake[1]
        else:  # the generator did not step on this batch
            with torch.no_grad():
                fake = self.regenerate(model, audio, lens)
        real_logits, _ = model(audio, part="disc")
        fake_logits, _ = model(fake, part="disc")
        loss = hinge_disc_loss(real_logits, fake_logits)
        unwrap(model).disc_updates += 1
        real_score = sum(r.mean() for r in real_logits) / len(real_logits)
        return {"loss": loss, "real_score": real_score.detach()}
