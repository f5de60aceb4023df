"""AdamW with sensible weight-decay groups, and the learning-rate schedules.

Weight decay shrinks weights toward zero; that is useful for matrices (linear, conv) but hurts
biases, normalisation gains and embedding tables (rare tokens would be pulled to zero), so those
go in a group without decay.

Schedules are pure functions ``lr_factor(step, cfg, total_steps)`` (the factor applied to
``cfg.lr`` for the ``step``-th optimiser update, 0-based) wrapped in a ``LambdaLR`` so that their
state (just the step count) is saved with the checkpoint.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from speechkit.train.config import OptimConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_factor", "param_groups"]

_NO_DECAY_MODULES = (
    nn.Embedding,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Splits trainable parameters into a decayed and a non-decayed group.

    No decay: every parameter with fewer than 2 dimensions (biases, norm gains, scalars) and
    every parameter owned by an embedding or normalisation module. Tied parameters (e.g. the
    decoder's input embedding reused as output projection) are counted once, as embeddings.
    """
    no_decay: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, _NO_DECAY_MODULES):
            for p in module.parameters(recurse=False):
                no_decay[id(p)] = p
    decay: dict[int, nn.Parameter] = {}
    for p in model.parameters():
        if not p.requires_grad or id(p) in no_decay:
            continue
        if p.ndim < 2:
            no_decay[id(p)] = p
        else:
            decay[id(p)] = p
    no_decay = {k: p for k, p in no_decay.items() if p.requires_grad}
    return [
        {"params": list(decay.values()), "weight_decay": weight_decay},
        {"params": list(no_decay.values()), "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, at the peak learning rate ``cfg.lr``."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
    )


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """The multiplier of ``cfg.lr`` for the ``step``-th update (0-based).

    All schedules warm up linearly over ``cfg.warmup_steps`` updates (reaching 1.0 at the last
    warmup update), then:

    * ``constant``: stay at 1.0;
    * ``noam``: decay as ``sqrt(warmup / step)`` (inverse square root; never reaches a floor);
    * ``warmup_linear``: fall linearly to ``min_lr_ratio`` at ``total_steps``, then hold;
    * ``warmup_cosine``: follow half a cosine to ``min_lr_ratio`` at ``total_steps``, then hold.
    """
    n = step + 1  # number of updates made once this one is applied
    warmup = cfg.warmup_steps
    if n <= warmup:
        return n / warmup
    if cfg.scheduler == "constant":
        return 1.0
    if cfg.scheduler == "noam":
        return math.sqrt(warmup / n)
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, (n - warmup) / decay_steps)
    floor = cfg.min_lr_ratio
    if cfg.scheduler == "warmup_linear":
        return 1.0 - (1.0 - floor) * progress
    if cfg.scheduler == "warmup_cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`lr_factor`; call ``.step()`` once per optimiser update.

    ``total_steps`` is the expected number of updates in the whole run (used by the decaying
    schedules; an estimate is fine, the rate holds at the floor afterwards).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")

    def factor(step: int) -> float:
        return lr_factor(step, cfg, total_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
