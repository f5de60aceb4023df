"""Training configs: optimiser, trainer, and the full experiment that ties the parts together.

An ``ExperimentConfig`` is what one YAML file in ``conf/`` describes and what every checkpoint
embeds (as ``to_dict``). Paths to data are command-line arguments, never config values.

Example::

    cfg = load_experiment_config("conf/s2t/phrasebook_tiny.yaml", ["optim.lr=5e-4"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from speechkit.config import ConfigError, load_config
from speechkit.data import DataConfig
from speechkit.models.s2t import S2TConfig
from speechkit.text.sentencepiece import TokenizerConfig

__all__ = ["ExperimentConfig", "OptimConfig", "TrainerConfig", "load_experiment_config"]

# Length of `<sos> <lang> <task> <notimestamps>` plus `<eos>`: added to every target.
_SOT_AND_EOS = 5


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule.

    ``lr`` is the peak rate (reached after ``warmup_steps`` optimiser updates). ``min_lr_ratio``
    is where decaying schedules end, as a fraction of ``lr``. ``grad_clip`` is the max global
    L2 norm (0 disables clipping). A task with several optimisers has one such section each.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.01
    scheduler: Literal["warmup_cosine", "noam", "warmup_linear", "constant"] = "warmup_cosine"
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas must lie in [0, 1), got {list(self.betas)}")
        if self.eps <= 0:
            raise ConfigError(f"optim.eps must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.scheduler == "noam" and self.warmup_steps == 0:
            raise ConfigError("optim.scheduler 'noam' needs optim.warmup_steps > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise ConfigError(f"optim.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass
class TrainerConfig:
    """The training loop: when to stop, validate, log and checkpoint; device and precision.

    Steps are optimiser updates. ``max_steps``, ``max_minutes`` and ``valid_every_steps`` use 0
    for "no limit" / "every epoch". ``max_minutes`` is wall time of one invocation: when it is
    reached the trainer validates, checkpoints and stops cleanly (``--resume`` goes on).
    ``amp='auto'`` is bf16 on a GPU that supports it and off on CPU. ``num_threads=0`` keeps
    torch's default. ``accum_grad`` micro-batches make one update. ``max_bad_steps`` consecutive non-finite losses abort the run.

    Under ``torchrun`` (docs/distributed.md): ``strategy`` is ``ddp`` (a replica per rank) or
    ``fsdp`` (parameters sharded over ranks). ``global_micro_batches`` > 0 fixes the micro-batches
    of one update over all ranks (each rank accumulates ``global_micro_batches / world_size``;
    ``trainer.accum_grad`` is then ignored), so the update does not change with the process count.

    ``select_by`` ranks the checkpoints that retention keeps and ``average_best`` averages: a
    figure of the task's validation output (``loss``, ``acc``, ...), best at its
    ``select_mode`` (``min`` or ``max``), or ``step`` with ``max`` for the newest (icefall's
    "average the last N"). A dev loss can rise while accuracy still improves (a model trained on
    noisy labels grows confident), and then the loss picks an early, weaker checkpoint.
    """

    max_epochs: int = 20
    max_steps: int = 0
    max_minutes: float = 0
    valid_every_steps: int = 0
    log_every_steps: int = 20
    keep_checkpoints: int = 5
    average_best: int = 5
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    device: str = "auto"
    num_threads: int = 0
    seed: int = 42
    max_bad_steps: int = 20
    strategy: Literal["ddp", "fsdp"] = "ddp"
    global_micro_batches: int = 0
    accum_grad: int = 1
    select_by: str = "loss"
    select_mode: Literal["min", "max"] = "min"

    def __post_init__(self) -> None:
        if self.global_micro_batches < 0:
            raise ConfigError(
                f"trainer.global_micro_batches must be >= 0 (0 = off), got {self.global_micro_batches}"
            )
        for name in (
            "max_epochs",
            "keep_checkpoints",
            "average_best",
            "max_bad_steps",
            "accum_grad",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "max_minutes", "valid_every_steps", "num_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"trainer.{name} must be >= 0 (0 = off), got {getattr(self, name)}"
                )
        if self.log_every_steps < 1:
            raise ConfigError(f"trainer.log_every_steps must be >= 1, got {self.log_every_steps}")
        if self.select_mode not in ("min", "max"):
            raise ConfigError(
                f"trainer.select_mode must be 'min' or 'max', got {self.select_mode!r}"
            )
        if not self.select_by:
            raise ConfigError("trainer.select_by must name a validation figure (e.g. loss) or step")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise ConfigError(
                f"trainer.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}"
            )


@dataclass
class ExperimentConfig:
    """One experiment: model, tokenizer, data pipeline, optimiser and loop.

    ``task`` names the task family (``speechkit/tasks/``); this config is the ``s2t`` task's.
    ``model.vocab_size`` may be 0 in YAML: ``speechkit.bin.train`` fills it from the tokenizer.
    """

    task: Literal["s2t"] = "s2t"
    model: S2TConfig = field(default_factory=S2TConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        feats = self.data.features
        codes = feats.codec_codebooks if feats.kind == "codec" else 0
        if codes != self.model.codec_codebooks:
            raise ConfigError(
                f"model.codec_codebooks ({self.model.codec_codebooks}) must equal "
                f"data.features.codec_codebooks ({codes}) with data.features.kind 'codec' (0 "
                "for log-mel): the model reads the codes the front end computes"
            )
        n_mels_feat = self.data.features.n_mels
        if n_mels_feat != self.model.n_mels:
            raise ConfigError(
                f"data.features.n_mels ({n_mels_feat}) must equal model.n_mels "
                f"({self.model.n_mels}): the model consumes the features as computed"
            )
        max_tokens = getattr(self.data, "max_target_tokens", None)
        max_pos = getattr(self.model, "max_target_positions", None)
        if max_tokens is None or max_pos is None:
            return
        prompted = (
            getattr(self.data, "prompt_prob", 0) > 0
            or getattr(self.data, "st_source_prompt", 0) > 0
        )
        prompt = 1 + getattr(self.data, "max_prompt_tokens", 0) if prompted else 0  # <sop>, pieces
        if prompt + max_tokens + _SOT_AND_EOS > max_pos:
            what = f" + a {prompt}-token prompt" if prompt else ""
            raise ConfigError(
                f"data.max_target_tokens ({max_tokens}){what} + {_SOT_AND_EOS} prefix/eos tokens "
                f"exceeds model.max_target_positions ({max_pos}); lower the first or raise the "
                "second"
            )


def load_experiment_config(
    path: str | Path, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Loads an experiment YAML, applying ``key.path=value`` overrides (values parsed as YAML)."""
    return load_config(ExperimentConfig, path, overrides)
