"""The ``tagger`` task: an acoustic-event tagger trained from clip-level labels.

    speechkit train --config conf/separation/tagger.yaml \\
        --train-cuts data/phrasebook/cuts_train.jsonl.gz --dev-cuts data/phrasebook/cuts_dev.jsonl.gz \\
        --out exp/tagger

A clip's labels are its corpus event (``speechkit.data.anchors.clip_labels``: ``clean`` ->
{speech}, ``music`` -> {speech, music} ...), or the clip's own ``custom["clip_labels"]`` (the
speech-free clips of ``speechkit.data.background_clips``): weak labels, no timing. The loss is
binary cross-entropy of the clip posteriors (``speechkit.models.tagger``); validation adds the
accuracy of the event read back from them (``event_of``).

Batch layout::

    wave     float32 (B, S)  16 kHz, zero-padded
    lengths  int64   (B,)    samples
    labels   float32 (B, K)  1 = the tag is in the clip
    events   list[str] (B)   the corpus event of each clip
    cut_ids  list[str] (B)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from lhotse.dataset import DynamicCutSampler
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from speechkit.data.anchors import cut_labels
from speechkit.data.audio import AudioError, load_audio
from speechkit.models import build_model
from speechkit.models.tagger import TaggerConfig, event_of
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, Task
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.optim import build_optimizer, build_scheduler

__all__ = ["TaggerData", "TaggerDataConfig", "TaggerTask", "TaggerTaskConfig", "pad_waves"]

logger = logging.getLogger(__name__)


@dataclass
class TaggerDataConfig:
    """max_duration: seconds of audio per batch; num_workers: loader processes."""

    max_duration: float = 60.0
    num_workers: int = 0


@dataclass
class TaggerTaskConfig:
    task: Literal["tagger"] = "tagger"
    model: TaggerConfig = field(default_factory=TaggerConfig)
    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=2e-3, warmup_steps=50, grad_clip=5.0)
    )
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def pad_waves(waves: list) -> tuple[Tensor, Tensor]:
    """Mono waves (each (S_i,)) -> zero-padded float32 (B, max S_i) and lengths int64 (B,)."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.int64)
    out = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        out[i, : len(w)] = torch.as_tensor(w)
    return out, lengths


class TaggerData(Dataset):
    """Cuts -> the batch of the module docstring; unreadable cuts are dropped with a warning."""

    def __init__(self, tags: list[str]) -> None:
        self.tags = list(tags)

    def __getitem__(self, cuts) -> dict | None:
        waves, labels, events, ids = [], [], [], []
        for cut in cuts:
            try:
                waves.append(load_audio(cut))
            except AudioError as e:
                logger.warning("dropping %s", e)
                continue
            event = cut.custom.get("event", "clean")
            label = torch.zeros(len(self.tags))
            for tag in cut_labels(cut):
                label[self.tags.index(tag)] = 1.0
            labels.append(label)
            events.append(event)
            ids.append(cut.id)
        if not waves:
            return None
        wave, lengths = pad_waves(waves)
        return {"wave": wave, "lengths": lengths, "labels": torch.stack(labels),
                "events": events, "cut_ids": ids}  # fmt: skip


@register_task
class TaggerTask(Task):
    """Trains ``speechkit.models.tagger.Tagger`` (see the module docstring)."""

    name = "tagger"
    config_class = TaggerTaskConfig
    model_type = "tagger"

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        sampler = DynamicCutSampler(
            cuts,
            max_duration=self.cfg.data.max_duration,
            shuffle=train,
            seed=seed,
            world_size=world_size,
            rank=rank,
        )
        loader = DataLoader(
            TaggerData(self.cfg.model.tags),
            sampler=sampler,
            batch_size=None,
            num_workers=self.cfg.data.num_workers,
        )
        return loader, sampler

    def batch_lengths(self, batch: dict) -> list[int]:
        return batch["lengths"].tolist()

    def build_model(self) -> nn.Module:
        model = build_model(self.cfg.model, "tagger")
        logger.info("tagger: %d parameters", sum(p.numel() for p in model.parameters()))
        return model

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        optimizer = build_optimizer(model, self.cfg.optim)
        scheduler = build_scheduler(optimizer, self.cfg.optim, total_steps)
        return [OptimizerSpec("model", optimizer, scheduler, grad_clip=self.cfg.optim.grad_clip)]

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        out = model(batch["wave"], batch["lengths"])
        loss = F.binary_cross_entropy(out["clip_probs"], batch["labels"])
        return {"loss": loss}

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        out = model(batch["wave"], batch["lengths"])
        loss = F.binary_cross_entropy(out["clip_probs"], batch["labels"])
        guess = event_of(out["clip_probs"].float().cpu(), self.cfg.model.tags)
        correct = sum(g == e for g, e in zip(guess, batch["events"], strict=True))
        n = len(guess)
        return {"loss": loss, "event_acc": torch.tensor(correct / n), "weight": torch.tensor(n)}

    def run_config(self) -> dict:
        return {"model_type": "tagger", **super().run_config()}
