"""The training loop: one small class, read top to bottom, that runs every task.

``Trainer.fit()`` runs epochs of optimiser updates over a checkpointable lhotse sampler and
writes everything to ``out_dir``::

    checkpoints/step-<N>.pt   at the end of every epoch, after each mid-epoch validation,
                              when a step/time limit stops the run, and on Ctrl-C
    train_log.csv             step, epoch, <what the task's training_step returns>, lr,
                              grad_norm, elapsed
    valid_log.csv             step, epoch, valid_<what the task's validation_step returns>,
                              elapsed
    tensorboard/              the same curves, plus padding fraction and skipped cuts per epoch

What a batch is, what a step computes and which optimisers exist is the task's business
(``speechkit/tasks/base.py``); the trainer never looks inside a batch except to move its tensors
to the device. Units: a *step* is one update (``accum_grad`` micro-batches, every due optimiser
stepped once); *elapsed* is wall seconds of training summed over resumed runs.

Resuming (``fit(resume=True)``) loads the newest checkpoint: weights, every optimiser, schedule
and loss scaler, sampler position (mid-epoch), RNG states. With ``num_workers=0`` a resumed run
reproduces the uninterrupted one exactly; with workers the sampler runs ahead by the prefetched
batches. A Ctrl-C save drops the micro-batches of an update that was only partly accumulated.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import speechkit
from speechkit.config import ConfigError
from speechkit.data.sampler import PaddingMeter
from speechkit.tasks.base import OptimizerSpec, Task
from speechkit.train import distributed as dist_utils
from speechkit.train.checkpoint import (
    checkpoint_path,
    config_differences,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    record_score,
    save_checkpoint,
)
from speechkit.train.config import TrainerConfig

__all__ = ["TrainData", "Trainer", "resolve_amp", "seed_everything", "select_device"]

logger = logging.getLogger(__name__)

# Config keys that may change between a run and its resumption.
RESUMABLE_KEYS = frozenset({"trainer.max_epochs", "trainer.max_steps", "trainer.max_minutes"})
# Key of a validation step's output that weights its batch and is not a figure.
WEIGHT = "weight"
# Suffix of the running count of a training statistic (how many micro-batches it summed).
_COUNT = "#n"


@dataclass
class TrainData:
    """What the trainer iterates.

    ``train_loader`` yields batch dicts (docs/design.md "Batch layout") or None for a batch whose
    cuts were all dropped; its batch order comes from ``sampler`` (a lhotse ``CutSampler``:
    ``set_epoch``, ``state_dict``, ``load_state_dict``). ``dev_loader`` may be None (no
    validation; checkpoints then carry no valid loss).
    """

    train_loader: Iterable[dict | None]
    sampler: Any
    dev_loader: Iterable[dict | None] | None = None


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(name: str) -> torch.device:
    """``auto`` is the first CUDA GPU if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"trainer.device={name!r} but no CUDA GPU is available; use 'auto'")
    return device


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.amp`` on ``device`` (None = full fp32)."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if amp == "fp16" and device.type != "cuda":
        logger.warning("trainer.amp=fp16 needs a CUDA GPU; training in fp32 on %s", device)
        return None
    return torch.float16 if amp == "fp16" else torch.bfloat16


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (
            name,
            torch.from_numpy(keys.astype(np.int64)),
            pos,
            has_gauss,
            cached,
        ),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class _CsvLog:
    """Appends rows to a CSV file whose columns are the keys seen so far (a new key rewrites the
    file with the wider header); on resume, drops rows logged after the resumed step."""

    def __init__(self, path: Path, first: list[str], resume_step: int | None) -> None:
        self.path, self.columns, rows = path, list(first), []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns += [c for c in reader.fieldnames or [] if c not in self.columns]
                rows = [r for r in reader if int(r["step"]) <= resume_step]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        new = [k for k in row if k not in self.columns]
        if new:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns[-1:-1] = new  # before "elapsed", the last column
            self._rewrite(rows)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, restval="").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


class Trainer:
    """Trains ``model`` as ``task`` says (``speechkit/tasks/base.py``).

    ``cfg`` is the experiment's ``trainer`` section; ``total_steps`` the expected number of
    updates (shapes the decaying schedules). Every checkpoint embeds ``task.run_config()``
    (compared on resume) and ``task.checkpoint_extras()`` (e.g. the tokenizer), so a checkpoint
    decodes or packs alone.
    """

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        data: TrainData,
        cfg: TrainerConfig,
        out_dir: str | Path,
        *,
        total_steps: int = 1,
    ) -> None:
        self.task, self.cfg, self.data = task, cfg, data
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.run_config = task.run_config()
        self.device = select_device(cfg.device)
        if self.device.type == "cpu":
            # denormals make CPU matmuls 4-10x slower late in training
            torch.set_flush_denormal(True)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.dist = dist_utils.dist_info()  # rank 0 of 1 unless launched by torchrun
        self.model = dist_utils.wrap_model(
            model.to(self.device), cfg.strategy, self.device, task.find_unused_parameters
        )
        self.accum = self._accum_steps()  # a world size that does not divide the batch fails
        self.specs: list[OptimizerSpec] = task.configure_optimizers(self.model, max(1, total_steps))
        names = [s.name for s in self.specs]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"task {task.name!r}: optimiser names must be unique, got {names}")
        # Only fp16 needs loss scaling (bf16 has fp32's exponent range); one scaler per optimiser.
        fp16 = self.amp_dtype == torch.float16
        self.scalers = {n: torch.amp.GradScaler("cuda", enabled=fp16) for n in names}
        # Which parameters may collect gradients while each optimiser's step runs (see
        # tasks/base.py): its own, less those the task froze.
        self._trainable = [(p, p.requires_grad) for p in self.model.parameters()]
        self.step, self.epoch, self.epoch_done = 0, 1, False
        self.bad_in_a_row, self.bad_total = 0, 0
        self.stop_reason: str | None = None
        self.padding = PaddingMeter()
        self._pending_rng: dict[str, Any] | None = None  # RNG state to restore (on resume)
        self._elapsed_before, self._start = 0.0, time.monotonic()
        self._last_valid: tuple[int, dict[str, float] | None] = (-1, None)
        self._saved_step = -1  # the step of the last checkpoint written
        logger.info(
            "task %s, device %s, amp %s, %d trainable parameters, optimisers %s",
            task.name,
            self.device,
            self.amp_dtype or "off",
            sum(p.numel() for p in model.parameters() if p.requires_grad),
            ", ".join(names),
        )

    # ------------------------------------------------------------------ the loop

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Trains until ``max_epochs``, ``max_steps`` or ``max_minutes``; returns a summary."""
        resumed = self._resume() if resume else None
        if resumed is None:
            self.data.sampler.set_epoch(self.epoch)
        self._open_logs(resume_step=self.step if resumed else None)
        self._start = time.monotonic()
        try:
            while self.epoch <= self.cfg.max_epochs:
                if not self._train_epoch():
                    logger.info("stopping at step %d: %s", self.step, self.stop_reason)
                    if self._saved_step != self.step:  # else the step's validation just saved it
                        self._save(self._validate())
                    break
                self._end_epoch()
            else:
                self.stop_reason = self.stop_reason or f"max_epochs={self.cfg.max_epochs} done"
        except KeyboardInterrupt:
            logger.warning("interrupted: saving step %d before exiting", self.step)
            self.stop_reason = "interrupted"
            self._save(None)
            raise
        finally:
            self.tb.close()
        return {
            "step": self.step,
            "epoch": self.epoch,
            "stop_reason": self.stop_reason,
            "bad_steps": self.bad_total,
        }

    def _train_epoch(self) -> bool:
        """One pass over the sampler (or its rest, after resume). False if a limit stopped it."""
        self.model.train()
        micro = 0
        sums: Counter = Counter()
        self.padding.reset()
        bar = tqdm(
            desc=f"epoch {self.epoch}",
            unit="batch",
            dynamic_ncols=True,
            leave=False,
            disable=not self.dist.is_main,
        )
        if self._limit_reached():  # e.g. resumed from a run that already hit max_steps
            bar.close()
            return False
        batches = iter(self.data.train_loader)
        if self._pending_rng is not None:
            # Restored only now: creating a DataLoader iterator draws from the torch RNG.
            _set_rng_state(self._pending_rng)
            self._pending_rng = None
        for batch in batches:
            if batch is None:  # every cut of the batch was dropped by the dataset
                continue
            lengths = self.task.batch_lengths(batch)
            if lengths is not None:
                self.padding.update(lengths)
            batch = self._to_device(batch)
            # Non-final micro-steps skip DDP's gradient all-reduce; the final one averages all.
            with dist_utils.no_sync(self.model, micro + 1 < self.accum):
                stats, why = self._micro_step(batch)
            if why is not None:
                self._skip_bad_batch(batch, why)
                micro = 0
                continue
            sums.update(stats)
            # Micro-batches each statistic was computed on (an optimiser may not be due in all).
            sums.update({f"{k}{_COUNT}": 1 for k in stats})
            micro += 1
            bar.update(1)
            if micro == self.accum:
                micro = 0
                self._update(sums, bar)
                # Checked before the next batch is drawn, so the saved sampler position is exact.
                if self._limit_reached():
                    bar.close()
                    return False
        if micro > 0:  # an epoch's tail shorter than accum_grad still makes an update
            dist_utils.average_gradients(self.model)  # (its micro-steps all ran under no_sync)
            self._update(sums, bar)
        bar.close()
        return True

    def _micro_step(self, batch: dict) -> tuple[dict[str, float], str | None]:
        """Forward and backward of every optimiser due at this update; returns the step's
        statistics, or the reason to skip the batch (a non-finite loss)."""
        stats: dict[str, float] = {}
        due = self._due()
        for spec in due:
            self._only_trainable(spec if len(self.specs) > 1 else None)
            with torch.autocast(
                self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None
            ):
                out = self.task.training_step(self.model, batch, spec.name)
            loss = out["loss"]
            # All ranks skip together, or the others would wait in backward's all-reduce.
            if dist_utils.any_rank(not torch.isfinite(loss).item()):
                self._only_trainable(None)
                return stats, f"{self._key(spec, 'loss')} is {loss.item()}"
            self.scalers[spec.name].scale(loss / self.accum).backward()
            stats.update({self._key(spec, k): float(v.detach()) for k, v in out.items()})
        self._only_trainable(None)
        return stats, None

    def _due(self) -> list[OptimizerSpec]:
        return [s for s in self.specs if s.due(self.step)]

    def _key(self, spec: OptimizerSpec, name: str) -> str:
        """A statistic's log name: as the task named it, prefixed when there are several
        optimisers."""
        return name if len(self.specs) == 1 else f"{spec.name}_{name}"

    def _only_trainable(self, spec: OptimizerSpec | None) -> None:
        """Lets only ``spec``'s parameters collect gradients (None: restores every flag)."""
        own = None if spec is None else {id(p) for p in spec.params}
        for p, flag in self._trainable:
            p.requires_grad_(flag and (own is None or id(p) in own))

    def _to_device(self, batch: dict) -> dict:
        return {
            k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }

    def _accum_steps(self) -> int:
        """Micro-batches per update on this rank."""
        return dist_utils.accum_steps(
            self.cfg.accum_grad, self.cfg.global_micro_batches, self.dist.world_size
        )

    def _update(self, sums: Counter, bar: tqdm) -> None:
        """Clips and steps each due optimiser and its schedule, logs, validates when due."""
        due = self._due()
        norms = {}
        for spec in due:
            scaler = self.scalers[spec.name]
            scaler.unscale_(spec.optimizer)
            norms[spec.name] = float(dist_utils.clip_grad_norm(spec.params, spec.clip))
            if not math.isfinite(norms[spec.name]) and not scaler.is_enabled():
                # (with fp16 the scaler skips such steps itself and lowers its scale)
                self._skip_bad_batch(None, f"{spec.name} gradient norm is {norms[spec.name]}")
                return
        for spec in due:
            self.scalers[spec.name].step(spec.optimizer)
            self.scalers[spec.name].update()
            spec.scheduler.step()
        self._zero_grad()
        self.step += 1
        self.bad_in_a_row = 0
        for spec in due:
            sums[self._key(spec, "grad_norm")] += norms[spec.name]
            sums[self._key(spec, "updates")] += 1
        main = self._key(self.specs[0], "loss")
        postfix = {"loss": f"{sums[main] / sums[main + _COUNT]:.3f}"} if main in sums else {}
        bar.set_postfix(postfix, lr=f"{self.specs[0].optimizer.param_groups[0]['lr']:.2e}")
        if self.step % self.cfg.log_every_steps == 0:
            self._log_train(Counter(dist_utils.all_reduce_sums(sums)))
            sums.clear()
        if self.cfg.valid_every_steps and self.step % self.cfg.valid_every_steps == 0:
            self._save(self._validate())
            self.model.train()

    def _zero_grad(self) -> None:
        for spec in self.specs:
            spec.optimizer.zero_grad(set_to_none=True)

    def _skip_bad_batch(self, batch: dict | None, why: str) -> None:
        """Drops the update in progress; aborts after ``max_bad_steps`` in a row."""
        self._zero_grad()
        self.bad_in_a_row += 1
        self.bad_total += 1
        cut_ids = (batch or {}).get("cut_ids")
        cuts = ", ".join(cut_ids[:20]) if cut_ids else "(accumulated batches)"
        logger.warning(
            "step %d: %s; skipped the update (%d in a row, %d in total); cuts: %s",
            self.step,
            why,
            self.bad_in_a_row,
            self.bad_total,
            cuts,
        )
        if self.bad_in_a_row >= self.cfg.max_bad_steps:
            raise RuntimeError(
                f"{self.bad_in_a_row} consecutive non-finite losses/gradients at step {self.step} "
                f"(trainer.max_bad_steps={self.cfg.max_bad_steps}); last cuts: {cuts}. "
                "Lower optim.lr, raise optim.warmup_steps, keep optim.grad_clip > 0, try "
                "trainer.amp=off, or check these cuts."
            )

    def _limit_reached(self) -> bool:
        if self.cfg.max_steps and self.step >= self.cfg.max_steps:
            self.stop_reason = f"max_steps={self.cfg.max_steps} reached"
        elif self.cfg.max_minutes and dist_utils.any_rank(
            time.monotonic() - self._start >= 60 * self.cfg.max_minutes
        ):
            self.stop_reason = f"max_minutes={self.cfg.max_minutes:g} reached"
        return self.stop_reason is not None

    def _end_epoch(self) -> None:
        """Logs the epoch's padding and skipped cuts, validates, checkpoints, moves on."""
        skipped = dict(getattr(getattr(self.data.train_loader, "dataset", None), "skipped", {}))
        logger.info(
            "epoch %d done at step %d: padding %.1f%% of frames, skipped cuts so far: %s",
            self.epoch,
            self.step,
            100 * self.padding.value,
            skipped or "none",
        )
        self.tb.add_scalar("train/padding_fraction", self.padding.value, self.step)
        self.tb.add_scalar("train/skipped_cuts", sum(skipped.values()), self.step)
        self.epoch_done = True
        self._save(self._validate())
        self.epoch += 1
        self.epoch_done = False
        self.data.sampler.set_epoch(self.epoch)

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def _validate(self) -> dict[str, float] | None:
        """Weighted means of the task's validation figures on the dev set (None without one)."""
        if self._last_valid[0] == self.step:
            return self._last_valid[1]
        if self.data.dev_loader is None:
            return None
        self.model.eval()
        total: Counter = Counter()
        rng = _rng_state()  # validation must not shift the training run's random stream
        for batch in self.data.dev_loader:
            if batch is None:
                continue
            with torch.autocast(
                self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None
            ):
                out = self.task.validation_step(self.model, self._to_device(batch))
            w = float(out.pop(WEIGHT, 1.0))
            total.update({k: float(v) * w for k, v in out.items()})
            total[WEIGHT] += w
        _set_rng_state(rng)
        total = Counter(dist_utils.all_reduce_sums(dict(total)))
        result = None
        if total[WEIGHT] > 0:
            result = {k: v / total[WEIGHT] for k, v in total.items() if k != WEIGHT}
            logger.info(
                "step %d valid %s",
                self.step,
                " ".join(f"{k} {v:.4f}" for k, v in result.items()),
            )
            for k, v in result.items():
                self.tb.add_scalar(f"valid/{k}", v, self.step)
            row = {f"valid_{k}": v for k, v in result.items()}
            self.valid_log.write(
                {"step": self.step, "epoch": self.epoch, **row, "elapsed": self._elapsed()}
            )
        self._last_valid = (self.step, result)
        return result

    # ------------------------------------------------------------------ logs

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._start

    def _open_logs(self, resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import, only when training

        if not self.dist.is_main:  # rank 0 alone writes logs
            self.train_log = self.valid_log = self.tb = dist_utils.NullWriter()
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        first = ["step", "epoch", "elapsed"]
        self.train_log = _CsvLog(self.out_dir / "train_log.csv", first, resume_step)
        self.valid_log = _CsvLog(self.out_dir / "valid_log.csv", first, resume_step)
        self.tb = SummaryWriter(self.out_dir / "tensorboard", purge_step=resume_step)

    def _log_train(self, sums: Counter) -> None:
        """Means over the micro-batches (statistics) and updates (gradient norms) since the last
        row, each over those it was computed on."""
        row: dict[str, Any] = {}
        for spec in self.specs:
            updates = max(1, sums.pop(self._key(spec, "updates"), 0))
            norm = sums.pop(self._key(spec, "grad_norm"), None)
            row[self._key(spec, "lr")] = spec.optimizer.param_groups[0]["lr"]
            if norm is not None:
                row[self._key(spec, "grad_norm")] = norm / updates
        stats = {k: v / sums[k + _COUNT] for k, v in sums.items() if not k.endswith(_COUNT)}
        row = {**stats, **row}
        for k, v in row.items():
            self.tb.add_scalar(f"train/{k}", v, self.step)
        self.train_log.write(
            {"step": self.step, "epoch": self.epoch, **row, "elapsed": round(self._elapsed(), 1)}
        )
        logger.info(
            "step %d epoch %d %s",
            self.step,
            self.epoch,
            " ".join(f"{k} {v:.4g}" for k, v in row.items()),
        )

    # ------------------------------------------------------------------ checkpoints

    def _select_score(self, valid: dict[str, float] | None) -> float | None:
        """The checkpoint's rank for retention and averaging, lower is better
        (``trainer.select_by`` / ``select_mode``); None without a validation."""
        name = self.cfg.select_by
        if name == "step":
            value = float(self.step)
        elif valid is None:
            return None
        elif name not in valid:
            raise ConfigError(
                f"trainer.select_by={name!r} is not a figure of the {self.task.name} task's "
                f"validation: {sorted(valid)} (or 'step')"
            )
        else:
            value = valid[name]
        return value if self.cfg.select_mode == "min" else -value

    def _save(self, valid: dict[str, float] | None) -> Path:
        valid_loss = valid.get("loss") if valid else None
        score, bad_select = None, None
        try:
            score = self._select_score(valid)
        except ConfigError as e:  # keep the updates made so far: save unranked, then stop
            bad_select = e
        state = {
            "model": dist_utils.model_state(self.model),  # unwrapped: any world size resumes
            "optimizers": {
                s.name: dist_utils.optimizer_state(self.model, s.optimizer) for s in self.specs
            },
            "schedulers": {s.name: s.scheduler.state_dict() for s in self.specs},
            "scalers": {n: sc.state_dict() for n, sc in self.scalers.items()},
            "sampler": self.data.sampler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "epoch_done": self.epoch_done,
            "task": self.task.name,
            "config": self.run_config,
            **self.task.checkpoint_extras(),
            "speechkit_version": speechkit.__version__,
            "valid_loss": valid_loss,
            "select_score": score,
            "rng": _rng_state(),
            "elapsed": self._elapsed(),
        }
        path = checkpoint_path(self.ckpt_dir, self.step)
        if self.dist.is_main:  # one writer; the others wait below until the file is complete
            save_checkpoint(state, path)
            record_score(self.ckpt_dir, path.name, score)
            prune_checkpoints(self.ckpt_dir, self.cfg.keep_checkpoints, self.cfg.average_best)
            logger.info("saved %s (valid loss %s)", path, valid_loss)
        dist_utils.barrier()
        self._saved_step = self.step
        if bad_select is not None:
            raise bad_select
        return path

    def _resume(self) -> Path | None:
        """Restores the newest checkpoint in ``out_dir``; None (fresh start) if there is none."""
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            logger.warning("--resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
            return None
        ckpt = load_checkpoint(path, map_location=self.device)
        stored = self.task.fill_stored_config(ckpt["config"])  # fields added since: defaults
        diffs = config_differences(stored, self.run_config, RESUMABLE_KEYS)
        if diffs:
            raise ConfigError(
                f"cannot resume from {path}: the config differs from the checkpoint's in "
                f"{', '.join(diffs)}. Only {', '.join(sorted(RESUMABLE_KEYS))} may change; "
                "restore the other values or train into a new output directory."
            )
        if set(ckpt.get("optimizers", {})) != {s.name for s in self.specs}:
            raise ConfigError(
                f"cannot resume from {path}: it holds optimisers "
                f"{sorted(ckpt.get('optimizers', {}))}, the task has "
                f"{[s.name for s in self.specs]} (a checkpoint of another task or version)"
            )
        dist_utils.load_model_state(self.model, ckpt["model"])
        for spec in self.specs:
            opt_state = ckpt["optimizers"][spec.name]
            dist_utils.load_optimizer_state(self.model, spec.optimizer, opt_state)
            spec.scheduler.load_state_dict(ckpt["schedulers"][spec.name])
            self.scalers[spec.name].load_state_dict(ckpt["scalers"][spec.name])
        self.data.sampler.load_state_dict(copy.deepcopy(ckpt["sampler"]))
        self.step, self.epoch, self.epoch_done = (
            ckpt["step"],
            ckpt["epoch"],
            ckpt["epoch_done"],
        )
        self._elapsed_before = ckpt.get("elapsed", 0.0)
        self._pending_rng = ckpt["rng"]
        if self.epoch_done:  # the checkpoint closed its epoch: start the next one
            self.epoch += 1
            self.epoch_done = False
            self.data.sampler.set_epoch(self.epoch)
        logger.info("resumed from %s: step %d, epoch %d", path, self.step, self.epoch)
        return path
