"""The task contract: what a model family tells the one trainer, and nothing more.

A task owns everything that differs between families: its typed config, how cuts become
batches, how its model is built (fresh or from ``--init``), what one training step computes, its
optimisers and schedules, its validation figures, and what its checkpoints carry besides the
weights. ``speechkit.train.Trainer`` owns everything that does not differ: the loop, AMP,
accumulation, clipping, DDP/FSDP, atomic checkpoints with every optimiser's state, mid-epoch
resume, logs, progress bar. ``speechkit train --config X.yaml`` reads ``task:`` from the YAML and
builds the task registered under that name (``speechkit/tasks/__init__.py``).

The life of a run (``speechkit/bin/train.py``)::

    task = TaskClass(cfg, TaskInputs(init=..., tokenizer=...))
    model = task.build_model()
    loader, sampler = task.build_dataloader(task.load_cuts(paths), train=True, ...)
    trainer = Trainer(task, model, TrainData(loader, sampler, dev_loader), cfg.trainer, out)
        # trainer calls task.configure_optimizers(model, total_steps) once, then per micro-batch
        # and per due optimiser: out = task.training_step(model, batch, spec.name);
        # out["loss"].backward(); and per dev batch: task.validation_step(model, batch)

Statistics are plain dicts of scalar tensors named by the task (``loss``, ``acc``, ``mel``,
``adv`` ...): the trainer logs whatever it gets, as CSV columns and TensorBoard curves. With one
optimiser the names are logged as they are; with several each is prefixed by the optimiser's
name (``gen_loss``, ``disc_loss``). In ``validation_step`` the key ``weight`` (e.g. the number of
target tokens) weights the batch in the dev-set mean and is not logged; ``loss`` chooses the best
checkpoints.

Multi-optimiser tasks (generator and discriminator): each ``OptimizerSpec`` owns a disjoint set
of parameters. While one optimiser's step runs, the parameters of the others do not collect
gradients, so a generator loss that flows through the discriminator leaves the discriminator's
gradients alone. ``every`` and ``start_step`` set the update ratio (e.g. the discriminator every
second update, or only after 1000 generator updates). Tasks call ``model(...)`` (the wrapped
module) in their steps, so DDP and FSDP see the forward; a model with several parts dispatches
in its ``forward`` (for example ``forward(x, part="disc")``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from lhotse import CutSet, combine
from torch import Tensor, nn

from speechkit.config import fill_defaults, to_dict
from speechkit.data.shar import SharCuts

__all__ = ["OptimizerSpec", "Task", "TaskInputs", "read_cuts"]

logger = logging.getLogger(__name__)


@dataclass
class TaskInputs:
    """What the command line gives a task besides its config: ``--init`` (a zoo name, packed
    directory or checkpoint) and ``--tokenizer`` (a tokenizer directory), where it uses them;
    the ``--set`` overrides and the config's path (for messages)."""

    init: str | None = None
    tokenizer: str | None = None
    overrides: list[str] = field(default_factory=list)
    config_path: str = "config"


@dataclass
class OptimizerSpec:
    """One optimiser of a task, with its schedule and the rules of its updates.

    ``name``: used in logs and checkpoints (``model`` for single-optimiser tasks).
    ``grad_clip``: max global L2 norm of this optimiser's gradients (0 = no clipping).
    ``every`` / ``start_step``: this optimiser steps on updates ``u`` (0-based) with
    ``u >= start_step`` and ``(u - start_step) % every == 0``; its schedule advances only then.
    """

    name: str
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    grad_clip: float = 0.0
    every: int = 1
    start_step: int = 0
    params: list[nn.Parameter] = field(init=False)

    def __post_init__(self) -> None:
        if self.every < 1 or self.start_step < 0:
            raise ValueError(f"optimizer {self.name!r}: every >= 1 and start_step >= 0 needed")
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

    def due(self, update: int) -> bool:
        """Whether this optimiser steps on the ``update``-th update (0-based)."""
        return update >= self.start_step and (update - self.start_step) % self.every == 0

    @property
    def clip(self) -> float:
        return self.grad_clip if self.grad_clip > 0 else math.inf


def read_cuts(paths: Iterable[str | Path]) -> CutSet:
    """Reads and concatenates lhotse cut manifests, or Shar directories (written by
    ``speechkit.bin.export_shar``: read lazily, see ``speechkit/data/shar.py``); a missing
    file is a clear error."""
    paths = [Path(p) for p in paths]
    if any(p.is_dir() for p in paths):
        if not all(p.is_dir() for p in paths):
            raise FileNotFoundError(f"cannot mix Shar directories and manifests: {paths}")
        return CutSet(SharCuts(paths))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cut manifest not found: {missing[0]}")
    parts = [CutSet.from_file(p) for p in paths]
    return parts[0] if len(parts) == 1 else combine(parts)


class Task(ABC):
    """The contract (see the module docstring). Subclasses set ``name``, ``config_class`` (a
    dataclass with a ``task`` field and ``optim``/``trainer`` sections as the family needs) and
    ``model_type`` (what ``speechkit.pretrained`` packs and loads; empty for models the zoo does
    not serve), and implement the abstract methods.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    model_type: ClassVar[str] = ""
    # DDP must tolerate parameters without gradients in a step (several optimisers, or a
    # model whose steps use different parts).
    find_unused_parameters: ClassVar[bool] = False

    def __init__(self, cfg: Any, inputs: TaskInputs | None = None) -> None:
        self.cfg = cfg
        self.inputs = inputs or TaskInputs()

    # ---- data --------------------------------------------------------------------------

    def load_cuts(self, paths: Iterable[str | Path], train: bool) -> CutSet:
        """The cuts of ``paths`` as this task trains on them (default: as they are)."""
        return read_cuts(paths)

    @abstractmethod
    def build_dataloader(
        self, cuts: CutSet, train: bool, seed: int, rank: int = 0, world_size: int = 1
    ) -> tuple[Iterable[dict | None], Any]:
        """``(loader, sampler)``: the loader yields batch dicts (None = every cut dropped); the
        sampler is checkpointable (``state_dict``, ``load_state_dict``, ``set_epoch``)."""

    def total_steps(self, cuts: CutSet, world_size: int) -> int:
        """Expected optimiser updates of the run (shapes decaying schedules); default:
        ``trainer.max_steps``, else one."""
        return max(1, self.cfg.trainer.max_steps)

    def batch_lengths(self, batch: dict) -> list[int] | None:
        """Per-row input lengths of a batch, for the trainer's padding meter (None: none)."""
        return None

    # ---- model and optimisation --------------------------------------------------------

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model to train, fresh or initialised from ``self.inputs.init``."""

    @abstractmethod
    def configure_optimizers(self, model: nn.Module, total_steps: int) -> list[OptimizerSpec]:
        """The optimisers over ``model`` (already wrapped for DDP/FSDP: build them from its
        parameters, e.g. ``speechkit.train.distributed.unwrap(model).generator``)."""

    @abstractmethod
    def training_step(self, model: nn.Module, batch: dict, optimizer: str) -> dict[str, Tensor]:
        """Scalars for one micro-batch and one optimiser; ``loss`` is back-propagated."""

    def validation_step(self, model: nn.Module, batch: dict) -> dict[str, Tensor]:
        """Scalars on one dev batch (``loss`` required, ``weight`` optional), run without
        gradients by the trainer; default: the training step of the optimiser named ``model``
        (the name single-optimiser tasks use)."""
        return self.training_step(model, batch, "model")

    # ---- what checkpoints carry ----------------------------------------------------------

    def run_config(self) -> dict:
        """The experiment config as a plain dict: stored in every checkpoint, compared when
        resuming, and read back by ``speechkit.pretrained`` to rebuild the model."""
        return to_dict(self.cfg)

    def run_config_sections(self) -> dict[str, type]:
        """The dataclass of each top-level ``run_config`` key that is not a field of
        ``config_class`` or holds another class than the field's (default: none); read by
        :meth:`fill_stored_config`."""
        return {}

    def fill_stored_config(self, stored: dict) -> dict:
        """A stored ``run_config`` (a checkpoint's, a finished run's marker) as this code
        would write it: fields added to the config since take their defaults
        (``speechkit.config.fill_defaults``), so a run written before a field existed resumes
        when the field's default keeps the old behaviour, and a value really changed still
        differs. Tasks whose ``config_class`` is no dataclass compare the stored dict as is."""
        if not dataclasses.is_dataclass(self.config_class):
            return stored
        return fill_defaults(stored, self.config_class, self.run_config_sections())

    def checkpoint_extras(self) -> dict:
        """Entries besides weights, optimisers and config that checkpoints hold (e.g. the
        tokenizer), so a checkpoint decodes or packs alone."""
        return {}
