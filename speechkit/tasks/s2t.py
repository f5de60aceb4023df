"""The ``s2t`` task: OWSM-style speech-to-text (ASR + ST, CTC + attention), from scratch with a
sentencepiece tokenizer (``--tokenizer``) or fine-tuned from a packed/imported model (``--init``).

Config: ``speechkit.train.config.ExperimentConfig`` (``conf/s2t/*.yaml``). Batches: the layout of
``speechkit.data.dataset.S2TDataset`` (docs/design.md "Batch layout"). Model: ``S2TModel``,
whose ``forward`` returns ``loss, loss_att, loss_ctc, acc, num_tokens``. Checkpoints carry the
tokenizer, so they decode and pack alone.

With ``--init``, the pretrained model's tokenizer, model config (replacing the YAML's ``model``
section) and features (replacing ``data.features``; global MVN travels inside the model) are
used, and its weights are loaded; ``--set model.KEY=VALUE`` still applies, to the pretrained
model's config (e.g. ``model.dropout=0.1``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from lhotse import CutSet
from torch import Tensor, nn

from speechkit.config import ConfigError, apply_overrides, from_dict, to_dict
from speechkit.data import build_dataloader, expand_tasks, split_supervisions
from speechkit.data.shar import total_duration
from speechkit.models import build_model
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, Task, TaskInputs, read_cuts
from speechkit.text import SentencePieceTokenizer, TextTokenizer
from speechkit.train import distributed as dist_utils
from speechkit.train.config import ExperimentConfig
from speechkit.train.optim import build_optimizer, build_scheduler

__all__ = ["S2TTask", "estimate_total_steps", "with_pretrained", "with_vocab"]

logger = logging.getLogger(__name__)

# Batch keys passed to ``S2TModel.forward``, in its positional order.
MODEL_INPUTS = ("feats", "feat_lens", "ys_in", "ys_out", "ctc_targets", "ctc_target_lens")


def load_init(init: str):
    """The ``--init`` model: a packed directory or checkpoint path, else a zoo name."""
    from speechkit import zoo  # imported only for --init

    return zoo.load(init)


def with_pretrained(
    cfg: ExperimentConfig,
    pretrained,
    source: str,
    overrides: Iterable[str] = (),
    model_types: tuple[str, ...] = ("s2t",),
) -> ExperimentConfig:
    """The pretrained model's config and features replace the YAML's (both are logged); the
    command line's ``model.*`` overrides then apply to the pretrained config (dropout, CTC
    weight, attention backend; a changed shape fails when the weights are loaded).
    ``model_types``: the packed model types the task fine-tunes."""
    if pretrained.model_type not in model_types:
        raise ConfigError(
            f"--init {source}: a {pretrained.model_type} model; the s2t task needs an s2t model "
            f"(for a {pretrained.model_type} model use a config with task: {pretrained.model_type})"
        )
    model_overrides = [o[len("model.") :] for o in overrides if o.startswith("model.")]
    model_dict = apply_overrides(to_dict(pretrained.config), model_overrides)
    model = from_dict(type(pretrained.config), model_dict, source=f"--init {source} + --set")
    logger.info("--init %s: model section replaced by %s", source, to_dict(model))
    logger.info("--init %s: data.features replaced by %s", source, to_dict(pretrained.features))
    data = dataclasses.replace(cfg.data, features=pretrained.features)
    return dataclasses.replace(cfg, model=model, data=data)


def with_vocab(cfg: ExperimentConfig, tokenizer: TextTokenizer, source: str) -> ExperimentConfig:
    """Fills ``model.vocab_size`` from the tokenizer (a different non-zero value is an error)."""
    given = cfg.model.vocab_size
    if given not in (0, tokenizer.vocab_size):
        raise ConfigError(
            f"{source}: model.vocab_size is {given} but the tokenizer has {tokenizer.vocab_size} "
            "ids; set model.vocab_size to 0 (filled automatically) or to the tokenizer's size"
        )
    model = dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size)
    return dataclasses.replace(cfg, model=model)


def estimate_total_steps(cuts: CutSet, cfg: ExperimentConfig, world_size: int = 1) -> int:
    """Expected optimiser updates in the run, for the LR schedule (a lower bound: dynamic
    batches are never fuller than ``max_duration``). An update takes a batch from each rank."""
    if cfg.trainer.max_steps:
        return cfg.trainer.max_steps
    seconds = total_duration(cuts)  # (a Shar index knows it without reading audio)
    batches = max(1, math.ceil(seconds / cfg.data.sampler.max_duration))
    accum = dist_utils.accum_steps(
        cfg.trainer.accum_grad, cfg.trainer.global_micro_batches, world_size
    )
    return max(1, batches * cfg.trainer.max_epochs // (accum * world_size))


def codec_front_end(features, model_cfg) -> nn.Module | None:
    """For ``features.kind: codec`` (an S2T model over speech codec codes): the frozen codec
    that computes them (``speechkit.codec.CodecFrontEnd``); None for log-mel features."""
    if features.kind != "codec":
        return None
    if not features.codec:
        raise ConfigError(
            "data.features.kind 'codec' needs data.features.codec (a packed codec directory): "
            "--set data.features.codec=exp/codec/packed"
        )
    from speechkit import codec as codec_api  # only for codec features

    codec = codec_api.load(features.codec)
    if codec.cfg.hop != features.hop_length or codec.sample_rate != features.sample_rate:
        raise ConfigError(
            f"data.features: hop_length {features.hop_length} / sample_rate "
            f"{features.sample_rate} must be the codec's ({codec.cfg.hop} / {codec.sample_rate})"
        )
    if codec.cfg.rvq.codebook_size != model_cfg.codec_codebook_size:
        raise ConfigError(
            f"model.codec_codebook_size ({model_cfg.codec_codebook_size}) must be the codec's "
            f"({codec.cfg.rvq.codebook_size})"
        )
    return codec_api.CodecFrontEnd(codec, features.codec_codebooks)


@register_task
class S2TTask(Task):
    """Speech-to-text with an ``S2TModel`` (see the module docstring)."""

    name = "s2t"
    config_class = ExperimentConfig
    model_type = "s2t"
    init_model_types: ClassVar[tuple[str, ...]] = ("s2t",)  # what --init may be

    def __init__(self, cfg: ExperimentConfig, inputs: TaskInputs | None = None) -> None:
        inputs = inputs or TaskInputs()
        if not inputs.init and not inputs.tokenizer:
            raise ConfigError("the s2t task needs --tokenizer DIR or --init MODEL")
        self.pretrained = load_init(inputs.init) if inputs.init else None
        if self.pretrained is not None:
            if inputs.tokenizer:
                logger.warning("--tokenizer %s ignored: --init brings its own", inputs.tokenizer)
            self.tokenizer = self.pretrained.tokenizer
            cfg = with_pretrained(
                cfg, self.pretrained, inputs.init, inputs.overrides, self.init_model_types
            )
        else:
            self.tokenizer = SentencePieceTokenizer.load(inputs.tokenizer)
        super().__init__(with_vocab(cfg, self.tokenizer, inputs.config_path), inputs)

    def load_cuts(self, paths: Iterable[str | Path], train: bool) -> CutSet:
        """With ``data.multitask: expand`` one cut per (cut, task), else as read (the dataset
        then gives each cut a decoder target per task, sharing one encoder pass)."""
        cuts = read_cuts(paths)
        if self.cfg.data.multitask == "shared":
            return split_supervisions(cuts)  # (expand_tasks splits too)
        return expand_tasks(cuts, self.cfg.data.asr_languages, self.cfg.data.st_directions)

    def build_dataloader(self, cuts, train, seed, rank=0, world_size=1):
        frontend = codec_front_end(self.cfg.data.features, self.cfg.model)
        return build_dataloader(
            cuts, self.tokenizer, self.cfg.data, train, seed, world_size, rank, frontend
        )

    def total_steps(self, cuts: CutSet, world_size: int) -> int:
        return estimate_total_steps(cuts, self.cfg, world_size)

    def batch_lengths(self, batch: dict) -> list[int]:
        return batch["feat_lens"].tolist()  # frames: the padding fraction is unit-free

    def build_model(self) -> nn.Module:
        model = build_model(self.cfg.model)
        if self.pretrained is not None:
            model.load_state_dict(self.pretrained.model.state_dict())
            self.pretrained = None  # the weights now live in the model being trained
        return model

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        optim = self.cfg.optim
        optimizer = build_optimizer(model, optim)
        scheduler = build_scheduler(optimizer, optim, total_steps)
        return [OptimizerSpec("model", optimizer, scheduler, grad_clip=optim.grad_clip)]

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        out = self._forward(model, batch)
        out.pop("num_tokens", None)
        return out

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        out = self._forward(model, batch)
        return {"loss": out["loss"], "acc": out["acc"], "weight": out["num_tokens"]}

    @staticmethod
    def _forward(model: nn.Module, batch: dict) -> dict[str, Tensor]:
        inputs = [batch[k] for k in MODEL_INPUTS]
        shared = {"target_utt": batch["target_utt"]} if batch.get("target_utt") is not None else {}
        return model(*inputs, **shared)

    def checkpoint_extras(self) -> dict:
        return {"tokenizer": self.tokenizer.state_dict()}
