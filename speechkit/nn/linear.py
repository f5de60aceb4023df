"""A Linear layer's forward for the few rows of a decoding step, on CPU.

A beam-search step runs every decoder projection on a handful of rows (5 beams of one file).
For 2-7 rows, torch's ``F.linear`` (``x @ W.T``) picks a CPU kernel that reads the weight 1.5-3x
slower than ``W @ x.T`` does for the same product: with 5 rows and cold weights, 2 threads,
89 against 56 us for 384 x 384 and 281 against 116 us for 1536 x 384 (whisper-tiny.en's layers),
104 against 56 us for 512 x 512 and 403 against 202 us for 2048 x 512 (whisper-base). The gain
holds where a layer has at least as many outputs as inputs; from 8 rows on, or for a layer that
narrows (1536 -> 384), ``F.linear`` is as fast or faster. Figures and the command that measures
them: egs/phrasebook/whisper1/RESULTS.md.

Only plain float32 ``nn.Linear`` modules without hooks take this path, in inference (no
gradient); anything else (int8 layers, autograd, GPUs, hooks that expect the module to run)
calls the module as before. Results agree with ``F.linear`` to float32 rounding (the sums run
in another order).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FEW_ROWS", "linear"]

FEW_ROWS = 7  # most rows of a call that take the ``W @ x.T`` path


def linear(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` for ``x`` (..., in) -> (..., out), through ``W @ x.T`` where that is faster
    (see the module docstring)."""
    if type(layer) is not nn.Linear or not _few_rows(layer, x):
        return layer(x)
    flat = x.reshape(-1, layer.in_features).t()  # (in, rows)
    if layer.bias is None:
        out = layer.weight @ flat
    else:
        out = torch.addmm(layer.bias[:, None], layer.weight, flat)  # (out, rows)
    # Contiguous like F.linear's result: attention kernels need unit-stride heads (a strided
    # query sends sdpa to its slow math path), and the copy of a few rows is cheap.
    return out.t().contiguous().reshape(*x.shape[:-1], layer.out_features)


def _few_rows(layer: nn.Linear, x: Tensor) -> bool:
    rows = x.numel() // max(layer.in_features, 1)
    return (
        rows <= FEW_ROWS
        and layer.out_features >= layer.in_features
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and layer.weight.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))
        and not (layer._forward_hooks or layer._forward_pre_hooks)
    )
