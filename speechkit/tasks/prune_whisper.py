"""The ``prune_whisper`` task: dynamic decoder pruning of a Whisper model.

    speechkit train --config conf/prune/whisper_prune.yaml --init exp/whisper_ft/model_avg.pt \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz --out exp/wprune

``--init`` (required): a Whisper model (zoo name, packed directory or a ``task: whisper``
checkpoint). Everything the ``whisper`` task does (tasks per cut, 30 s windows, what moves)
holds here; the model is ``speechkit.models.gated_whisper.GatedWhisperModel`` with the gate
settings of the ``gates`` section, and the loss adds the FLOP-weighted sparsity penalty of the
``prune`` task (``speechkit.tasks.prune.sparsity_objective``) toward a budget drawn per batch
from ``[prune.budget_min, prune.budget_max]``; validation uses hard gates at
``prune.valid_budget``. ``gates.gate_mode: none`` is the full fine-tuning arm with the same
loop. Stored contexts (``prune.contexts_dir``) are not read: the Whisper gates see the encoder
output and the budget only.

Logged: ``loss``, ``loss_task``, ``kept``, ``sparsity``, ``budget`` and the keep rate of each
decoder module kind (``dec_self_attn``, ``dec_cross_attn``, ``dec_ffn``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from speechkit.config import ConfigError, to_dict
from speechkit.models.gated_whisper import GatedWhisperConfig, GatedWhisperModel
from speechkit.tasks import register_task
from speechkit.tasks.base import OptimizerSpec, TaskInputs
from speechkit.tasks.prune import BudgetSteps, PruneOptions, module_rates, sparsity_objective
from speechkit.tasks.s2t import MODEL_INPUTS
from speechkit.tasks.whisper import WhisperTask, WhisperTaskConfig
from speechkit.train.distributed import unwrap
from speechkit.train.optim import build_scheduler, param_groups

__all__ = ["WhisperGateOptions", "WhisperPruneConfig", "WhisperPruneTask"]

logger = logging.getLogger(__name__)


@dataclass
class WhisperGateOptions:
    """The gate fields of ``GatedWhisperConfig`` (see ``models/gated_whisper.py``)."""

    gate_mode: Literal["dynamic", "static", "none"] = "dynamic"
    gate_hidden: int = 128
    gate_tau: float = 1.0
    gate_budget_gain: float = 0.0


@dataclass
class WhisperPruneConfig(WhisperTaskConfig):
    """The whisper fine-tuning config plus ``gates`` and ``prune`` (see the module docstring)."""

    task: Literal["prune_whisper"] = "prune_whisper"
    gates: WhisperGateOptions = field(default_factory=WhisperGateOptions)
    prune: PruneOptions = field(default_factory=PruneOptions)
    # Peak learning rate of the gate predictor (new weights), beside optim.lr for the
    # pretrained ones: fine-tuning Whisper wants ~1e-5, which would leave a fresh predictor
    # where it started within a few hundred updates.
    predictor_lr: float = 1.0e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.predictor_lr <= 0:
            raise ConfigError(f"predictor_lr must be > 0, got {self.predictor_lr}")
        if self.prune.contexts_dir:
            raise ConfigError(
                "prune.contexts_dir: the Whisper gates read no stored contexts (encoder output "
                "and budget only); leave it empty"
            )
        if self.prune.split_budget:
            raise ConfigError(
                "prune.split_budget: the Whisper gates are the decoder's only, so the budget is "
                "the decoder's already"
            )


@register_task
class WhisperPruneTask(BudgetSteps, WhisperTask):
    """Gated fine-tuning of a Whisper model (see the module docstring)."""

    name = "prune_whisper"
    config_class = WhisperPruneConfig
    model_type = "gated_whisper"
    # A module gated off for the whole batch gets no gradient in that step.
    find_unused_parameters = True

    def __init__(self, cfg: WhisperPruneConfig, inputs: TaskInputs | None = None) -> None:
        super().__init__(cfg, inputs)
        self.model_cfg = GatedWhisperConfig(**to_dict(self.model_cfg), **to_dict(cfg.gates))

    def build_model(self) -> nn.Module:
        model = GatedWhisperModel(self.model_cfg)
        missing, unexpected = model.load_state_dict(
            self.pretrained.model.state_dict(), strict=False
        )
        if unexpected or any(not k.startswith("predictor.") for k in missing):
            raise ConfigError(f"--init weights do not fit: missing {missing}, extra {unexpected}")
        if self.cfg.whisper.freeze_encoder:
            model.encoder.requires_grad_(False)
        logger.info(
            "gated fine-tuning of %s (gate_mode %s, %d decoder gates): %d of %d parameters "
            "trainable", self.inputs.init, self.model_cfg.gate_mode, model.n_dec,
            model.num_parameters(trainable_only=True), model.num_parameters(),
        )  # fmt: skip
        return model

    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        """AdamW as the whisper task's, with the predictor in a group of its own at
        ``predictor_lr`` (no weight decay); one schedule scales both."""
        optim, m = self.cfg.optim, unwrap(model)
        predictor = {id(p): p for n, p in m.named_parameters()
                     if n.startswith("predictor.") and p.requires_grad}  # fmt: skip
        groups = [
            {**g, "params": [p for p in g["params"] if id(p) not in predictor]}
            for g in param_groups(m, optim.weight_decay)
        ]
        if predictor:
            groups.append({"params": list(predictor.values()), "lr": self.cfg.predictor_lr,
                           "weight_decay": 0.0})  # fmt: skip
        optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)
        scheduler = build_scheduler(optimizer, optim, total_steps)
        return [OptimizerSpec("model", optimizer, scheduler, grad_clip=optim.grad_clip)]

    def _step(self, model: nn.Module, batch: dict, budget: float) -> dict[str, Tensor]:
        inputs = [batch[k] for k in MODEL_INPUTS]
        rows = batch["feats"].shape[0]
        gate_inputs = {"budget": torch.full((rows,), budget, device=batch["feats"].device)}
        out = model(*inputs, target_utt=batch.get("target_utt"), gate_inputs=gate_inputs)
        if "kept" not in out:  # gate_mode none: full fine-tuning
            return out
        out = sparsity_objective(out, budget, self.cfg.prune.alpha)
        out.update(module_rates(model, None, out.pop("dec_gates")))
        return out

    def run_config(self) -> dict:
        config = super().run_config()
        return {**config, "model_type": "gated_whisper", "model": to_dict(self.model_cfg)}
