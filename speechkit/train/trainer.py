"""The training loop: one small class, read top to bottom.

``Trainer.fit()`` runs epochs of optimiser updates over a checkpointable lhotse sampler and
writes everything to ``out_dir``::

    checkpoints/step-<N>.pt   at the end of every epoch, after each mid-epoch validation,
                              when a step/time limit stops the run, and on Ctrl-C
    train_log.csv             step, epoch, loss, loss_att, loss_ctc, acc, lr, grad_norm, elapsed
    valid_log.csv             step, epoch, valid_loss, valid_acc, elapsed
    tensorboard/              the same curves, plus padding fraction and skipped cuts per epoch

Units: a *step* is one optimiser update (``accum_grad`` micro-batches); *elapsed* is wall
seconds of training summed over resumed runs. Losses are the model's per-token means.

Resuming (``fit(resume=True)``) loads the newest checkpoint: weights, optimiser, schedule,
sampler position (mid-epoch), RNG states. With ``num_workers=0`` a resumed run reproduces the
uninterrupted one exactly; with workers the sampler runs ahead by the prefetched batches.
A Ctrl-C save drops the micro-batches of an update that was only partly accumulated.
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
from speechkit.train import distributed as dist_utils
from speechkit.train.checkpoint import (
    checkpoint_path,
    config_differences,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    record_valid_loss,
    save_checkpoint,
)
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.optim import build_optimizer, build_scheduler

__all__ = ["TrainData", "Trainer", "resolve_amp", "seed_everything", "select_device"]

logger = logging.getLogger(__name__)

# Batch keys passed to ``model(...)``, in the positional order of the model contract.
MODEL_INPUTS = (
    "feats",
    "feat_lens",
    "ys_in",
    "ys_out",
    "ctc_targets",
    "ctc_target_lens",
)
# Batch keys passed by name when the batch has them (targets sharing an encoder pass).
OPTIONAL_INPUTS = ("target_utt",)
# Config keys that may change between a run and its resumption.
RESUMABLE_KEYS = frozenset({"trainer.max_epochs", "trainer.max_steps", "trainer.max_minutes"})
TRAIN_COLUMNS = [
    "step",
    "epoch",
    "loss",
    "loss_att",
    "loss_ctc",
    "acc",
    "lr",
    "grad_norm",
    "elapsed",
]
VALID_COLUMNS = ["step", "epoch", "valid_loss", "valid_acc", "elapsed"]
_STATS = ("loss", "loss_att", "loss_ctc", "acc")


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
    """Appends rows to a CSV file; on resume, drops rows logged after the resumed step."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path, self.columns = path, columns
        rows = []
        if resume_step is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


class Trainer:
    """Trains ``model`` (``model(*batch[MODEL_INPUTS]) -> dict(loss, loss_att, loss_ctc, acc,
    num_tokens)``, scalars) with AdamW and a warmup schedule.

    ``run_config`` is the experiment config as a plain dict (stored in every checkpoint and
    compared on resume); ``tokenizer_state`` is embedded too, so a checkpoint decodes alone.
    ``total_steps`` is the expected number of updates (shapes the decaying schedules).
    """

    def __init__(
        self,
        model: nn.Module,
        data: TrainData,
        optim_cfg: OptimConfig,
        cfg: TrainerConfig,
        out_dir: str | Path,
        *,
        run_config: dict,
        tokenizer_state: dict | None = None,
        total_steps: int = 1,
    ) -> None:
        self.cfg, self.optim_cfg, self.data = cfg, optim_cfg, data
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.run_config, self.tokenizer_state = run_config, tokenizer_state
        self.device = select_device(cfg.device)
        if self.device.type == "cpu":
            torch.set_flush_denormal(
                True
            )  # denormals make CPU matmuls 4-10x slower late in training
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.dist = dist_utils.dist_info()  # rank 0 of 1 unless launched by torchrun
        self.model = dist_utils.wrap_model(model.to(self.device), cfg.strategy, self.device)
        self.optimizer = build_optimizer(self.model, optim_cfg)
        self._accum_steps()  # a world size that does not divide the global batch fails here
        self.scheduler = build_scheduler(self.optimizer, optim_cfg, max(1, total_steps))
        # Only fp16 needs loss scaling (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.epoch_done = 0, 1, False
        self.bad_in_a_row, self.bad_total = 0, 0
        self.stop_reason: str | None = None
        self.padding = PaddingMeter()
        self._pending_rng: dict[str, Any] | None = None  # RNG state to restore (on resume)
        self._elapsed_before, self._start = 0.0, time.monotonic()
        self._last_valid: tuple[int, dict[str, float] | None] = (-1, None)
        self._saved_step = -1  # the step of the last checkpoint written
        logger.info(
            "device %s, amp %s, %d trainable parameters",
            self.device,
            self.amp_dtype or "off",
            sum(p.numel() for p in model.parameters() if p.requires_grad),
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
        accum, micro = self._accum_steps(), 0
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
            self.padding.update(batch["feat_lens"].tolist())  # frames: the fraction is unit-free
            # Non-final micro-steps skip DDP's gradient all-reduce; the final one averages all.
            with dist_utils.no_sync(self.model, micro + 1 < accum):
                out = self._forward(batch)
                # All ranks skip together, or the others would wait in backward's all-reduce.
                bad = dist_utils.any_rank(not torch.isfinite(out["loss"]).item())
                if not bad:
                    self.scaler.scale(out["loss"] / accum).backward()
            if bad:
                self._skip_bad_batch(batch, f"loss is {out['loss'].item()}")
                micro = 0
                continue
            sums.update({k: float(out[k].detach()) for k in _STATS if k in out}, n=1)
            micro += 1
            bar.update(1)
            if micro == accum:
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

    def _accum_steps(self) -> int:
        """Micro-batches per update on this rank."""
        return dist_utils.accum_steps(
            self.optim_cfg.accum_grad, self.cfg.global_micro_batches, self.dist.world_size
        )

    def _forward(self, batch: dict) -> dict[str, torch.Tensor]:
        inputs = [batch[k].to(self.device, non_blocking=True) for k in MODEL_INPUTS]
        extra = {k: batch[k].to(self.device) for k in OPTIONAL_INPUTS if batch.get(k) is not None}
        with torch.autocast(self.device.type, self.amp_dtype, enabled=self.amp_dtype is not None):
            return self.model(*inputs, **extra)

    def _update(self, sums: Counter, bar: tqdm) -> None:
        """Clips, steps optimiser and schedule, logs, and validates when due."""
        self.scaler.unscale_(self.optimizer)
        clip = self.optim_cfg.grad_clip if self.optim_cfg.grad_clip > 0 else math.inf
        grad_norm = float(dist_utils.clip_grad_norm(self.model, clip))
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            # (with fp16 the scaler skips such steps itself and lowers its scale)
            self._skip_bad_batch(None, f"gradient norm is {grad_norm}")
            return
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self.bad_in_a_row = 0
        sums.update(grad_norm=grad_norm, updates=1)
        lr = self.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{sums['loss'] / max(1, sums['n']):.3f}", lr=f"{lr:.2e}")
        if self.step % self.cfg.log_every_steps == 0:
            self._log_train(Counter(dist_utils.all_reduce_sums(sums)), lr)
            sums.clear()
        if self.cfg.valid_every_steps and self.step % self.cfg.valid_every_steps == 0:
            self._save(self._validate())
            self.model.train()

    def _skip_bad_batch(self, batch: dict | None, why: str) -> None:
        """Drops the update in progress; aborts after ``max_bad_steps`` in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_in_a_row += 1
        self.bad_total += 1
        cuts = ", ".join(batch["cut_ids"][:20]) if batch is not None else "(accumulated batches)"
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
        """Token-weighted mean loss and accuracy on the dev set (None without one)."""
        if self._last_valid[0] == self.step:
            return self._last_valid[1]
        if self.data.dev_loader is None:
            return None
        self.model.eval()
        total = Counter()
        rng = _rng_state()  # validation must not shift the training run's random stream
        for batch in self.data.dev_loader:
            if batch is None:
                continue
            out = self._forward(batch)
            n = float(out.get("num_tokens", len(batch["cut_ids"])))
            total.update(loss=float(out["loss"]) * n, acc=float(out.get("acc", 0.0)) * n, n=n)
        _set_rng_state(rng)
        total = Counter(dist_utils.all_reduce_sums({k: total[k] for k in ("loss", "acc", "n")}))
        result = None
        if total["n"] > 0:
            result = {
                "loss": total["loss"] / total["n"],
                "acc": total["acc"] / total["n"],
            }
            logger.info(
                "step %d valid loss %.4f acc %.4f",
                self.step,
                result["loss"],
                result["acc"],
            )
            self.tb.add_scalar("valid/loss", result["loss"], self.step)
            self.tb.add_scalar("valid/acc", result["acc"], self.step)
            self.valid_log.write(
                {
                    "step": self.step,
                    "epoch": self.epoch,
                    "valid_loss": result["loss"],
                    "valid_acc": result["acc"],
                    "elapsed": self._elapsed(),
                }
            )
        self._last_valid = (self.step, result)
        return result

    # ------------------------------------------------------------------ logs

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._start

    def _open_logs(self, resume_step: int | None) -> None:
        from torch.utils.tensorboard import (
            SummaryWriter,
        )  # slow import, only when training

        if not self.dist.is_main:  # rank 0 alone writes logs
            self.train_log = self.valid_log = self.tb = dist_utils.NullWriter()
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.train_log = _CsvLog(self.out_dir / "train_log.csv", TRAIN_COLUMNS, resume_step)
        self.valid_log = _CsvLog(self.out_dir / "valid_log.csv", VALID_COLUMNS, resume_step)
        self.tb = SummaryWriter(self.out_dir / "tensorboard", purge_step=resume_step)

    def _log_train(self, sums: Counter, lr: float) -> None:
        n, updates = max(1, sums["n"]), max(1, sums["updates"])
        row = {k: sums[k] / n if k in sums else "" for k in _STATS}
        row.update(
            step=self.step,
            epoch=self.epoch,
            lr=lr,
            grad_norm=sums["grad_norm"] / updates,
            elapsed=round(self._elapsed(), 1),
        )
        self.train_log.write(row)
        for k in (*_STATS, "lr", "grad_norm"):
            if row[k] != "":
                self.tb.add_scalar(f"train/{k}", row[k], self.step)
        logger.info(
            "step %d epoch %d loss %.4f acc %s lr %.3g grad_norm %.3g",
            self.step,
            self.epoch,
            row["loss"],
            row["acc"],
            lr,
            row["grad_norm"],
        )

    # ------------------------------------------------------------------ checkpoints

    def _save(self, valid: dict[str, float] | None) -> Path:
        valid_loss = valid["loss"] if valid else None
        state = {
            "model": dist_utils.model_state(self.model),  # unwrapped: any world size resumes
            "optimizer": dist_utils.optimizer_state(self.model, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.data.sampler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "epoch_done": self.epoch_done,
            "config": self.run_config,
            "tokenizer": self.tokenizer_state,
            "speechkit_version": speechkit.__version__,
            "valid_loss": valid_loss,
            "rng": _rng_state(),
            "elapsed": self._elapsed(),
        }
        path = checkpoint_path(self.ckpt_dir, self.step)
        if self.dist.is_main:  # one writer; the others wait below until the file is complete
            save_checkpoint(state, path)
            record_valid_loss(self.ckpt_dir, path.name, valid_loss)
            prune_checkpoints(self.ckpt_dir, self.cfg.keep_checkpoints, self.cfg.average_best)
            logger.info("saved %s (valid loss %s)", path, valid_loss)
        dist_utils.barrier()
        self._saved_step = self.step
        return path

    def _resume(self) -> Path | None:
        """Restores the newest checkpoint in ``out_dir``; None (fresh start) if there is none."""
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            logger.warning("--resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
            return None
        ckpt = load_checkpoint(path, map_location=self.device)
        diffs = config_differences(ckpt["config"], self.run_config, RESUMABLE_KEYS)
        if diffs:
            raise ConfigError(
                f"cannot resume from {path}: the config differs from the checkpoint's in "
                f"{', '.join(diffs)}. Only {', '.join(sorted(RESUMABLE_KEYS))} may change; "
                "restore the other values or train into a new output directory."
            )
        dist_utils.load_model_state(self.model, ckpt["model"])
        dist_utils.load_optimizer_state(self.model, self.optimizer, ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
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
