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

``PackedWeight``: the output projection of a Whisper search step (5 rows against the 51,864 x D
token table, 80-106 MB) is the one product that no layout of a plain call makes fast. MKL's
sgemm packs its operands into blocked panels inside every call (the usual GEMM design); MKL's
packed API does that once for a fixed weight. ``PackedWeight`` keeps that packed copy
(``torch.ops.mkl``'s ``_mkl_reorder_linear_weight`` / ``_mkl_linear``, what inductor's CPU
weight prepacking uses) and reuses it: 9.7 -> 5.4 ms for 51,864 x 384 and 11.6 -> 6.7 ms for
51,865 x 512 with 5 rows, 2 threads, cold weights; the results agree with ``x @ W.T``'s to
float32 rounding. From 6 rows on it is no faster for whisper-base's table (12.7 against 12.7 ms
at 6, 13.5 against 19.1 at 8), so it serves at most ``PACKED_ROWS``. The copy costs the
weight's size again in memory. Those figures are from one host; on an AMD EPYC (Zen 3) the
packed call is 2x *slower* than the plain one (14.9 against 7.9 ms, 5 rows, tiny.en's table).
Figures and the commands that measure them: egs/phrasebook/whisper1/RESULTS.md.

``HalfWeight`` / ``HalfLinear``: a float16 copy of a weight whose values are all float16 values
(Whisper's released checkpoints), multiplied in float32 by the CPU kernel
``speechkit.kernels.half_linear`` (``kernels/half_linear.py`` says why it is written here). A
search step is bound by reading the weights, so reading half the bytes makes the table's product
2.1x faster for 5 rows (9.3 -> 4.5 ms, 51,865 x 512, AMD EPYC, 2 threads) and the decoder
layers' 1.8-2.1x; results agree with ``x @ W.T``'s to float32 rounding. A weight that is not
exactly float16 is never rounded: it is declined (with one warning) and runs as float32. The copy
costs half the weight's size in memory.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = [
    "FEW_ROWS",
    "HALF_ROWS",
    "PACKED_ROWS",
    "HalfLinear",
    "HalfWeight",
    "PackedWeight",
    "half_linears",
    "is_half_exact",
    "linear",
]

FEW_ROWS = 7  # most rows of a call that take the ``W @ x.T`` path
PACKED_ROWS = 5  # most rows of a call that ``PackedWeight`` serves
# Most rows of a call that ``HalfWeight`` serves: the kernel reads the weight once per 6 rows,
# and at 12 rows it is still 1.6-2.0x faster than float32 for whisper-base's shapes.
HALF_ROWS = 12


def linear(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` for ``x`` (..., in) -> (..., out), through ``W @ x.T`` where that is faster
    (see the module docstring)."""
    if type(layer) is HalfLinear:
        out = layer.half_weight(layer.weight, x.reshape(-1, layer.in_features), layer.bias)
        if out is not None:
            return out.reshape(*x.shape[:-1], layer.out_features)
    elif type(layer) is not nn.Linear:
        return layer(x)
    if not _few_rows(layer, x):
        return F.linear(x, layer.weight, layer.bias) if type(layer) is HalfLinear else layer(x)
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


class _WeightCopy:
    """The mechanism ``PackedWeight`` and ``HalfWeight`` share: a copy of one float32 weight
    (out, in) on CPU, made by ``_make`` on the first call and again whenever the weight is
    another tensor or was changed in place (its version counter moved), so a fine-tuned or
    reloaded weight is never multiplied by a stale copy. It serves products with at most
    ``max_rows`` float32 CPU rows and no gradient wanted; a weight made under
    ``torch.inference_mode`` has no version counter and is declined. Not a module: the copy is
    not saved with the model's state, and deep or pickled copies start without it (a copied
    model makes its own when it first needs it)."""

    max_rows: int

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._packed: Tensor | None = None  # None with a key set: ``_make`` declined the weight

    def __deepcopy__(self, memo: dict) -> _WeightCopy:
        return type(self)()

    def __getstate__(self) -> dict:
        return {"_key": None, "_packed": None}

    @staticmethod
    def available() -> bool:
        raise NotImplementedError

    def _make(self, weight: Tensor) -> Tensor | None:
        """The copy of ``weight`` (detached), or None to decline it."""
        raise NotImplementedError

    def _copy(self, weight: Tensor, x: Tensor, bias: Tensor | None) -> Tensor | None:
        """The current copy of ``weight``, or None where this path does not apply."""
        tensors = (weight, x) if bias is None else (weight, x, bias)
        if not (
            x.dim() == 2
            and x.shape[0] <= self.max_rows
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            and not weight.is_inference()
            and self.available()
        ):
            return None
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.stride())
        if key != self._key:
            self._packed = None  # a failed ``_make`` leaves no stale copy behind
            self._packed = self._make(weight.detach())
            self._key = key
        return self._packed


class PackedWeight(_WeightCopy):
    """MKL's packed copy of one float32 weight (out, in) on CPU, for ``x @ W.T`` with at most
    ``PACKED_ROWS`` rows (see the module docstring and ``_WeightCopy``).

    ``__call__(weight, x)`` returns (rows, out) for ``x`` (rows, in), or None where this path
    does not apply (no MKL, another device or dtype, too many rows, autograd), and the caller
    computes the product its own way.
    """

    max_rows = PACKED_ROWS

    @staticmethod
    @functools.cache  # asked at every search step; the answer is fixed by the torch build
    def available() -> bool:
        return torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")

    def _make(self, weight: Tensor) -> Tensor:
        return torch.ops.mkl._mkl_reorder_linear_weight(weight.contiguous(), PACKED_ROWS)

    def __call__(self, weight: Tensor, x: Tensor) -> Tensor | None:
        packed = self._copy(weight, x, None)
        if packed is None:
            return None
        return torch.ops.mkl._mkl_linear(x.contiguous(), packed, weight.detach(), None,
                                         PACKED_ROWS)  # fmt: skip


class HalfWeight(_WeightCopy):
    """A float16 copy of one float32 weight (out, in) on CPU whose values are all float16 values,
    for ``x @ W.T + b`` with at most ``HALF_ROWS`` rows (see the module docstring and
    ``_WeightCopy``).

    ``__call__(weight, x, bias=None)`` returns (rows, out) for ``x`` (rows, in), or None where
    this path does not apply (no kernel, another device or dtype, too many rows, autograd, a
    weight that float16 cannot hold exactly), and the caller computes the product its own way.
    """

    max_rows = HALF_ROWS

    @staticmethod
    @functools.cache  # asked at every search step; fixed for the process
    def available() -> bool:
        try:
            from speechkit.kernels.half_linear import kernel_available
        except ImportError:  # a bare source checkout has no speechkit.kernels (kernels/README.md)
            return False
        return kernel_available()

    def _make(self, weight: Tensor) -> Tensor | None:
        from speechkit.kernels.half_linear import pack_half

        if not is_half_exact(weight):
            _warn_inexact(tuple(weight.shape))
            return None
        return pack_half(weight)

    def __call__(self, weight: Tensor, x: Tensor, bias: Tensor | None = None) -> Tensor | None:
        packed = self._copy(weight, x, bias)
        if packed is None:
            return None
        b = None if bias is None else bias.detach().contiguous()
        return torch.ops.speechkit_cpu.half_linear(x.contiguous(), packed, b, weight.shape[0])


def is_half_exact(weight: Tensor, rows: int = 4096) -> bool:
    """True when every value of ``weight`` is a float16 value (converts exactly), checked
    ``rows`` rows at a time so that no full-size temporary is made."""
    w = weight.detach().reshape(-1, weight.shape[-1] if weight.dim() else 1)
    return all(torch.equal(c.to(torch.float16).to(c.dtype), c) for c in w.split(rows))


def _warn_inexact(shape: tuple[int, ...], _said: list = []) -> None:  # noqa: B006
    """Once per process: a fine-tuned model would say it for every layer."""
    if not _said:
        _said.append(shape)
        logger.warning(
            "a %s weight is not exactly float16 (fine-tuned in float32?): its products, and "
            "those of any other such weight, stay float32",
            "x".join(map(str, shape)),
        )


class HalfLinear(nn.Linear):
    """An ``nn.Linear`` whose few-row products (a search step's) read a float16 copy of its
    weight through ``HalfWeight``; every other call, and a weight that float16 cannot hold
    exactly, runs as ``nn.Linear``. Same parameters and state dict as ``nn.Linear``. Made from
    one by ``half_linears``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.half_weight = HalfWeight()

    def forward(self, x: Tensor) -> Tensor:
        return linear(self, x)


def half_linears(module: nn.Module, on: bool = True) -> int:
    """Turns every ``nn.Linear`` inside ``module`` into a ``HalfLinear`` sharing its parameters
    (``on``), or every ``HalfLinear`` back into an ``nn.Linear``. Returns how many changed."""
    old, new = (nn.Linear, HalfLinear) if on else (HalfLinear, nn.Linear)
    changed = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not old:
                continue
            swapped = new(child.in_features, child.out_features, bias=child.bias is not None,
                          device="meta")  # fmt: skip
            swapped.weight, swapped.bias = child.weight, child.bias
            swapped.train(child.training)
            setattr(parent, name, swapped)
            changed += 1
    return changed
