"""Data-parallel training: process group, model wrapping, and the few collectives the loop needs.

Launch (one process per GPU, or per CPU worker with gloo)::

    torchrun --nproc_per_node 4 -m speechkit.bin.train --config ... --out exp/run

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them (NCCL on CUDA, gloo on CPU). Without them everything here
is a no-op for a single process, so the trainer calls these functions unconditionally.

Strategies (``trainer.strategy``): ``ddp`` keeps a full replica per rank and averages gradients
(DistributedDataParallel); ``fsdp`` shards parameters, gradients and optimiser state over ranks
(PyTorch's ``fully_shard``, FSDP2, one unit per layer of every ``nn.ModuleList``, for models that
do not fit one GPU; it runs on CPU ranks with gloo too, which is how the tests check it).
Checkpoints always hold the full, unwrapped state dict, written by rank 0 only, so a run can
resume under a different number of processes, or none. See docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from speechkit.config import ConfigError

__all__ = [
    "DistInfo",
    "NullWriter",
    "accum_steps",
    "all_reduce_sums",
    "any_rank",
    "average_gradients",
    "barrier",
    "clip_grad_norm",
    "destroy",
    "dist_info",
    "init_distributed",
    "is_main",
    "load_model_state",
    "load_optimizer_state",
    "model_state",
    "no_sync",
    "optimizer_state",
    "unwrap",
    "wrap_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def dist_info() -> DistInfo:
    """This process's place in the group (0 / 1 / 0 when not distributed)."""
    if not _active():
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    return dist_info().is_main


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Joins the process group described by torchrun's environment; a no-op without it.

    ``device`` is ``trainer.device``: NCCL when it resolves to CUDA (each rank then uses GPU
    ``LOCAL_RANK``), gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or _active():
        return dist_info()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local_rank)  # "cuda" then means this rank's GPU
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    info = dist_info()
    logger.info(
        "rank %d of %d (local %d), backend %s", info.rank, info.world_size, local_rank, backend
    )
    return info


def destroy() -> None:
    if _active():
        dist.destroy_process_group()


def barrier() -> None:
    if _active():
        dist.barrier()


def accum_steps(accum_grad: int, global_micro_batches: int, world_size: int) -> int:
    """Micro-batches per rank per update: ``accum_grad``, or ``global_micro_batches /
    world_size`` when a global count is configured (then the update sees the same number of
    batches whatever the number of processes)."""
    if not global_micro_batches:
        return accum_grad
    if global_micro_batches % world_size:
        raise ConfigError(
            f"trainer.global_micro_batches={global_micro_batches} is not divisible by the "
            f"world size {world_size}; launch a number of processes that divides it, or change it"
        )
    return global_micro_batches // world_size


# ---------------------------------------------------------------------- wrapping


def wrap_model(
    model: nn.Module, strategy: str, device: torch.device, find_unused: bool = False
) -> nn.Module:
    """``model`` (already on ``device``) wrapped for data parallelism; unchanged when alone.

    Under ``fsdp`` the model is sharded in place (``fully_shard``) and returned as itself.
    ``find_unused``: DDP tolerates parameters that get no gradient in a step (tasks whose steps
    use different parts of the model, e.g. a generator and a discriminator)."""
    if not _active() or dist.get_world_size() == 1:
        return model
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        layers = {id(m) for lst in model.modules() if isinstance(lst, nn.ModuleList) for m in lst}
        # Reversed pre-order puts every module after its descendants: inner units come first.
        for module in reversed(list(model.modules())):
            if id(module) in layers:  # a layer's weights are gathered only while it runs
                fully_shard(module, mesh=mesh)
                # Methods the model calls besides forward (e.g. a decoder layer's cross_kv)
                # must gather the weights too; layers list them in FSDP_FORWARD_METHODS.
                for name in getattr(module, "FSDP_FORWARD_METHODS", ()):
                    register_fsdp_forward_method(module, name)
        fully_shard(model, mesh=mesh)
        return model
    ids = None
    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused
    )


def _is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP / FSDP wrapper."""
    return model.module if hasattr(model, "module") else model


def no_sync(model: nn.Module, skip: bool):
    """Context in which backward does not all-reduce (non-final accumulation micro-steps of
    DDP; FSDP reduce-scatters every micro-step, so its gradients are always complete)."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def average_gradients(model: nn.Module) -> None:
    """All-reduces (means) gradients by hand: for an update whose last micro-step ran under
    :func:`no_sync` (an epoch tail shorter than the accumulation)."""
    if not _active() or dist.get_world_size() == 1 or _is_fsdp(model):
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Global gradient norm of ``params`` (over all shards under FSDP), clipped to
    ``max_norm``."""
    norm = nn.utils.clip_grad_norm_(params, max_norm)
    # Under FSDP the norm is a DTensor reduced over the shards; every rank gets the full value.
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


# ---------------------------------------------------------------------- collectives


def all_reduce_sums(sums: Mapping[str, float]) -> dict[str, float]:
    """Sums each value over ranks. Every rank must pass the same keys (sorted here)."""
    if not _active() or dist.get_world_size() == 1:
        return dict(sums)
    keys = sorted(sums)
    t = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any (keeps ranks' control flow in step)."""
    if not _active() or dist.get_world_size() == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------- checkpoint state


def _full_options():
    """Whole (unsharded) tensors, gathered to the CPU of rank 0."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def model_state(model: nn.Module) -> dict:
    """The full, unwrapped model state dict (collective under FSDP: call on every rank; only
    rank 0 gets the tensors, the writer)."""
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=_full_options())
    return unwrap(model).state_dict()


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Optimiser state keyed like a single-process run (collective under FSDP)."""
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=_full_options())
    return optimizer.state_dict()


def load_model_state(model: nn.Module, state: dict) -> None:
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        set_model_state_dict(model, state, options=_full_options())
        return
    unwrap(model).load_state_dict(state)


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    if _is_fsdp(model):
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=_full_options())
        return
    optimizer.load_state_dict(state)


class NullWriter:
    """Stands in for logs and TensorBoard on ranks other than 0: every method does nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None
