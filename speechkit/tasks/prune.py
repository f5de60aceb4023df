"""The ``prune`` task: context-driven dynamic pruning of a trained s2t model.

    speechkit train --config conf/prune/phrasebook_prune.yaml --init exp/s2t_tiny/model_avg.pt \\
        --train-cuts data/cuts_train.jsonl.gz --dev-cuts data/cuts_dev.jsonl.gz --out exp/prune

``--init`` (required): a trained s2t model (checkpoint, packed directory or zoo name). Its model
config, weights, tokenizer and features are used (as in the s2t task); the YAML's ``model``
section adds the gate fields of ``GatedS2TConfig`` (``gate_mode``, ``gate_contexts``,
``gate_hidden``, ``gate_tau``), and ``--set model.KEY=VALUE`` may set either kind. The model
is ``speechkit.models.gated_s2t.GatedS2TModel`` (its docstring says what the gates see).

``prune`` section: ``contexts_dir`` holds ``speaker.safetensors`` / ``event.safetensors``
(``speechkit compute-contexts``), read for the kinds in ``model.gate_contexts``; a cut with no
context gets the predictor's learned "unknown" vector (counted and warned about, never an
error). Each training batch draws a budget (fraction of the gated modules' FLOPs to keep)
uniformly from ``[budget_min, budget_max]``; the loss is the s2t loss plus
``alpha * mean(|kept - budget| + (kept - budget)^2)`` (the squared term is what makes the
target reachable, per the anchors). Validation uses hard gates at ``valid_budget``.
``split_budget: true`` adds the same penalty on the decoder's own kept fraction
(``kept_dec``), so the decoder keeps about the budget too: with one total, the predictor
meets the budget in the encoder (most of the FLOPs) and keeps the decoder, where decoding at
batch 1 spends its time. Measured in ``egs/phrasebook/prune1/RESULTS.md``: it buys batch-1
speed, and on the phrasebook it costs much of the translation quality.

``distill`` > 0 adds ``distill * loss_kd`` to the training loss, where ``loss_kd`` is
``(1 - ctc_weight) * KL_dec + ctc_weight * KL_ctc``: KL(teacher || student) of the decoder's
next-token distributions averaged over target tokens, and of the CTC posteriors averaged over
encoder frames (the validation loss stays the task's). The teacher is the ``--init`` model
itself, ungated and frozen: the gated model learns to say what the unpruned model says at every
budget, encoder and decoder, not only the reference tokens. It costs one teacher forward pass
per batch. ``teacher`` names another ungated s2t model with the same tokenizer as the teacher
(e.g. the full fine-tune; required when ``--init`` is gated, as in a settle phase).

``settle: true`` is a second phase after gated fine-tuning: ``--init`` is then a gated model
of the same gate configuration (the first phase's ``model_avg.pt``), its predictor is frozen,
the gates are its argmax in training as in decoding (no Gumbel noise), and the loss is the
task's alone: the weights train for the gate patterns decoding will run, which the first
phase only reaches in its last updates (its kept fraction falls toward the budget throughout).

The three arms of the recipe are configs of this task: ``gate_mode: dynamic`` (per utterance,
with or without contexts), ``static`` (the budget alone decides: the same gates for every
utterance, exportable as a smaller model) and ``none`` (full fine-tuning, no gates).

Logged: ``loss`` (total), ``loss_task``, ``kept`` and ``sparsity`` (= 1 - kept, FLOP-weighted),
``budget``, and the keep rate of each module kind averaged over layers (``enc_ffn1``,
``dec_cross_attn`` ...).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from speechkit.config import ConfigError, to_dict
from speechkit.data.contexts import ContextStore
from speechkit.decode.gated import gate_inputs
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.s2t import S2TConfig
from speechkit.nn.decoder import IGNORE_ID
from speechkit.nn.gates import check_budget
from speechkit.nn.masks import lengths_to_mask
from speechkit.tasks import register_task
from speechkit.tasks.base import TaskInputs
from speechkit.tasks.s2t import MODEL_INPUTS, S2TTask, load_init
from speechkit.train.config import ExperimentConfig

__all__ = [
    "BudgetSteps",
    "distill_loss",
    "PruneConfig",
    "PruneOptions",
    "PruneTask",
    "module_rates",
    "sparsity_objective",
]

logger = logging.getLogger(__name__)

_S2T_FIELDS = {f.name for f in dataclasses.fields(S2TConfig)}
_GATE_FIELDS = [f.name for f in dataclasses.fields(GatedS2TConfig) if f.name not in _S2T_FIELDS]
# What a gated --init must share with the run for its predictor's weights to mean the same.
_GATE_SHAPE = ("gate_mode", "gate_contexts", "gate_hidden", "gate_ffn_groups", "gate_input_norm",
               "gate_always_on")  # fmt: skip


@dataclass
class PruneOptions:
    """The sparsity objective and where contexts live (see the module docstring)."""

    contexts_dir: str = ""
    alpha: float = 4.0
    budget_min: float = 0.3
    budget_max: float = 0.9
    valid_budget: float = 0.5
    distill: float = 0.0
    teacher: str = ""
    settle: bool = False
    split_budget: bool = False

    def __post_init__(self) -> None:
        for key in ("budget_min", "budget_max", "valid_budget"):
            check_budget(getattr(self, key), f"prune.{key}")
        if self.budget_min > self.budget_max:
            raise ConfigError("prune: need budget_min <= budget_max")
        if self.alpha < 0:
            raise ConfigError(f"prune.alpha must be >= 0, got {self.alpha}")
        if self.distill < 0:
            raise ConfigError(f"prune.distill must be >= 0, got {self.distill}")
        if self.teacher and not self.distill:
            raise ConfigError("prune.teacher is only used with prune.distill > 0")


@dataclass
class PruneConfig(ExperimentConfig):
    """The s2t experiment config with a gated model and the ``prune`` section."""

    task: Literal["prune"] = "prune"
    model: GatedS2TConfig = field(default_factory=GatedS2TConfig)
    prune: PruneOptions = field(default_factory=PruneOptions)


def sparsity_objective(
    out: dict[str, Tensor], budget: float, alpha: float, split: bool = False
) -> dict[str, Tensor]:
    """A gated model's step output with the sparsity penalty: ``out["kept"]`` (N,) becomes its
    mean, ``loss`` becomes ``loss_task + alpha * mean(|kept - budget| + (kept - budget)^2)``,
    and ``sparsity`` (1 - kept) and ``budget`` are logged. ``split``: the same penalty on the
    decoder's kept fraction ``out["kept_dec"]`` (N,) is added (logged as its mean either way)."""
    kept = out.pop("kept")
    kept_dec = out.pop("kept_dec", None)
    gap = kept - budget
    out["loss_task"] = out["loss"]
    out["loss"] = out["loss"] + alpha * (gap.abs() + gap**2).mean()
    if kept_dec is not None:
        if split:
            gap_dec = kept_dec - budget
            out["loss"] = out["loss"] + alpha * (gap_dec.abs() + gap_dec**2).mean()
        out["kept_dec"] = kept_dec.detach().mean()
    out["kept"] = kept.detach().mean()
    out["sparsity"] = 1.0 - out["kept"]
    out["budget"] = torch.tensor(budget, device=kept.device)
    return out


def distill_loss(student: Tensor, teacher: Tensor, valid: Tensor) -> Tensor:
    """KL(teacher || student) of the distributions over the last axis, mean over the positions
    where ``valid`` (N, L) is True; ``student``, ``teacher``: (N, L, V) logits or log-probs.
    Computed in float32; 0 when no position is valid."""
    log_s = student[valid].float().log_softmax(-1)  # (n, V)
    log_t = teacher[valid].float().log_softmax(-1)
    kl = (log_t.exp() * (log_t - log_s)).sum()
    return kl / valid.sum().clamp(min=1)


def module_rates(model: nn.Module, enc: Tensor | None, dec: Tensor) -> dict[str, Tensor]:
    """The keep rate of each module kind averaged over layers (``enc_ffn1``, ``dec_ffn`` ...;
    and over channel groups) from the mean gates ``enc`` (n_enc,) (None: no encoder gates) and
    ``dec`` (n_dec,)."""
    from speechkit.train.distributed import unwrap

    m = unwrap(model)
    rates = {}
    for prefix, names, gates in (("enc", m.enc_names, enc), ("dec", m.dec_names, dec)):
        if gates is None:
            continue
        kinds = [n.split(".")[1] for n in names]  # layer.module[.group]
        for kind in sorted(set(kinds)):
            cols = [i for i, k in enumerate(kinds) if k == kind]
            rates[f"{prefix}_{kind}"] = gates[cols].mean()
    return rates


class BudgetSteps:
    """The steps of a gated task (``cfg.prune``: ``PruneOptions``): training draws a budget
    uniformly from ``[budget_min, budget_max]`` per batch, validation uses ``valid_budget``;
    ``self._step(model, batch, budget)`` does the rest. Listed before the task's base class."""

    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        p = self.cfg.prune
        budget = p.budget_min + (p.budget_max - p.budget_min) * float(torch.rand(()))
        out = self._step(model, batch, budget)
        out.pop("num_tokens", None)
        return out

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        out = self._step(model, batch, self.cfg.prune.valid_budget)
        keep = ("loss", "acc", "loss_task", "kept")
        return {**{k: out[k] for k in keep if k in out}, "weight": out["num_tokens"]}


@register_task
class PruneTask(BudgetSteps, S2TTask):
    """Gated fine-tuning of a trained s2t model (see the module docstring)."""

    name = "prune"
    config_class = PruneConfig
    model_type = "gated_s2t"
    # Not needed for the relaxed gates (every module runs in training), but a gated model with
    # ctc_weight 0 or a static predictor leaves parameters without gradients in some steps.
    find_unused_parameters = True
    init_model_types = ("s2t", "gated_s2t")  # gated: a settle phase (prune.settle)
    teacher: nn.Module | None = None  # the frozen --init model when prune.distill > 0

    def __init__(self, cfg: PruneConfig, inputs: TaskInputs | None = None) -> None:
        inputs = inputs or TaskInputs()
        if not inputs.init:
            raise ConfigError("the prune task fine-tunes a trained s2t model: give --init")
        gates = {name: getattr(cfg.model, name) for name in _GATE_FIELDS}
        gate_sets = [o for o in inputs.overrides
                     if o.startswith("model.") and o[6:].split("=")[0] in _GATE_FIELDS]  # fmt: skip
        base_inputs = dataclasses.replace(
            inputs, overrides=[o for o in inputs.overrides if o not in gate_sets]
        )
        super().__init__(cfg, base_inputs)  # the s2t task: --init's model, tokenizer, features
        self._check_init(gates, inputs.init)
        if cfg.prune.distill > 0:  # checked here, so a bad teacher is an argument error
            self.teacher = self._frozen_teacher(self._teacher_model())
        self.inputs = inputs
        self.stores = {
            kind: ContextStore.load(cfg.prune.contexts_dir, kind)
            for kind in cfg.model.stored_contexts
        }
        gates["context_dims"] = {kind: s.dim for kind, s in self.stores.items()}
        gates["languages"] = list(self.tokenizer.languages)
        s2t = {k: v for k, v in to_dict(self.cfg.model).items() if k in _S2T_FIELDS}
        model = GatedS2TConfig(**s2t, **gates)
        self.cfg = dataclasses.replace(self.cfg, model=model)
        self._unknown_logged = 0

    def _check_init(self, gates: dict, source: str) -> None:
        """A gated ``--init`` (only for ``prune.settle``) must have the run's gate shape; an
        ungated one (s2t, or this task's ``gate_mode: none``) starts any arm but settling."""
        init = self.pretrained.config
        gated = isinstance(init, GatedS2TConfig) and init.gate_mode != "none"
        if self.cfg.prune.settle and (not gated or gates["gate_mode"] == "none"):
            raise ConfigError(
                "prune.settle trains a gated model under its own gates: give a gated model "
                f"(the first phase's model_avg.pt) as --init and a gated arm; --init {source} "
                f"is {'gated' if gated else 'not gated'}, model.gate_mode is {gates['gate_mode']}"
            )
        if not gated:  # an s2t model, or a full fine-tune of this task (gate_mode none)
            return
        if not self.cfg.prune.settle:
            raise ConfigError(f"--init {source} is a gated model: only prune.settle continues one")
        differ = {
            k: (getattr(init, k), gates[k]) for k in _GATE_SHAPE if getattr(init, k) != gates[k]
        }
        if (init.gate_budget_gain > 0) != (gates["gate_budget_gain"] > 0):
            differ["gate_budget_gain"] = (init.gate_budget_gain, gates["gate_budget_gain"])
        if differ:
            listed = ", ".join(f"{k}: {a!r} in --init, {b!r} here" for k, (a, b) in differ.items())
            raise ConfigError(f"--init {source} has other gates than this run ({listed})")

    def build_model(self) -> nn.Module:
        model = GatedS2TModel(self.cfg.model)
        if self.pretrained is not None:
            missing, unexpected = model.load_state_dict(
                self.pretrained.model.state_dict(), strict=False
            )
            if unexpected or any(not k.startswith("predictor.") for k in missing):
                raise ConfigError(
                    f"--init weights do not fit: missing {missing}, extra {unexpected}"
                )
            self.pretrained = None
        if self.cfg.prune.settle:
            model.hard_gates = True
            model.predictor.requires_grad_(False)
        return model

    def _teacher_model(self) -> nn.Module:
        """``prune.teacher`` when given (its tokenizer must be the run's), else ``--init``."""
        source = self.cfg.prune.teacher
        if not source:
            return self.pretrained.model
        teacher = load_init(source)

        def tokens(tok) -> list[str]:
            return [tok.id_to_token(i) for i in range(tok.vocab_size)]

        if tokens(teacher.tokenizer) != tokens(self.tokenizer):
            raise ConfigError(f"prune.teacher {source}: another tokenizer than --init's")
        return teacher.model

    @staticmethod
    def _frozen_teacher(model: nn.Module) -> nn.Module:
        if getattr(model, "predictor", None) is not None:
            raise ConfigError(
                "prune.distill: the teacher (prune.teacher, else --init) must be an ungated s2t "
                "model"
            )
        return model.eval().requires_grad_(False)

    def _distill(self, out: dict, batch: dict, inputs: list) -> None:
        """Adds ``distill * loss_kd`` to ``out["loss"]`` (its ``logits`` against the teacher's)."""
        device = batch["feats"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher = self.teacher(*inputs, target_utt=batch.get("target_utt"), keep_logits=True)
        kd = distill_loss(out.pop("logits"), teacher["logits"], batch["ys_out"] != IGNORE_ID)
        if "ctc_log_probs" in out:
            w = self.cfg.model.ctc_weight
            frames = lengths_to_mask(out.pop("enc_lens"), out["ctc_log_probs"].shape[1])
            ctc = distill_loss(out.pop("ctc_log_probs"), teacher["ctc_log_probs"], frames)
            kd = (1.0 - w) * kd + w * ctc
        out["loss"] = out["loss"] + self.cfg.prune.distill * kd
        out["loss_kd"] = kd.detach()

    def _gate_inputs(self, batch: dict, budget: float, device) -> dict:
        langs = (batch.get("context") or {}).get("language")
        out = gate_inputs(self.cfg.model, self.stores, batch["cut_ids"], langs, budget, device)
        unknown = sum(s.missing for s in self.stores.values())
        if unknown > self._unknown_logged:
            logger.warning("%d context lookups found no vector so far (the learned unknown "
                           "context is used for them)", unknown)  # fmt: skip
            self._unknown_logged = unknown * 2  # warn again when the count doubles
        return out

    def _step(self, model: nn.Module, batch: dict, budget: float) -> dict[str, Tensor]:
        device = batch["feats"].device
        inputs = [batch[k] for k in MODEL_INPUTS]
        distill = self.teacher is not None and model.training
        out = model(*inputs, target_utt=batch.get("target_utt"), keep_logits=distill,
                    gate_inputs=self._gate_inputs(batch, budget, device))  # fmt: skip
        if "kept" in out:  # a gated arm (gate_mode none, full fine-tuning, has no gates)
            # Settling: the frozen argmax gates take no gradient; kept is only logged.
            alpha = 0.0 if self.cfg.prune.settle else self.cfg.prune.alpha
            out = sparsity_objective(out, budget, alpha, self.cfg.prune.split_budget)
        if distill:
            self._distill(out, batch, inputs)
        if "kept" not in out:
            return out
        out.update(module_rates(model, out.pop("enc_gates"), out.pop("dec_gates")))
        return out

    def run_config(self) -> dict:
        return {"model_type": "gated_s2t", **super().run_config()}
