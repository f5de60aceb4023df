"""Fused (flash) attention for encoder self-attention over padded batches, in Triton.

Read top to bottom: the plain-PyTorch reference, when the kernel can run, the launchers of the
private Triton kernels (``flash_attention_triton.py``), their registration as torch ops (so
``torch.compile`` can trace them), the autograd function, and the one public function
:func:`flash_attention`.

Shape legend: B batch, H heads, L query length, S key length (padded tensor sizes), D head dim.

Padding convention: sequences are right padded. ``q_lens[b]`` queries and ``k_lens[b]`` keys of
sequence ``b`` are valid; positions at or after those lengths are padding. Padded keys get no
attention weight; padded query rows output zeros and receive zero gradients (so do the
gradients of padded keys and values). A query row of a sequence with no valid keys outputs zeros
too. The kernel skips padded blocks by loop bounds: their cost is a store of zeros.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

__all__ = ["flash_attention", "flash_attention_ref", "kernel_available"]

MAX_HEAD_DIM = 128
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# ---- reference ----------------------------------------------------------------------------


def _lengths_or_full(lens: Tensor | None, batch: int, full: int, device: torch.device) -> Tensor:
    """(B,) int32 lengths on ``device``; ``None`` means every position is valid."""
    if lens is None:
        return torch.full((batch,), full, dtype=torch.int32, device=device)
    if lens.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lens.shape)}")
    return lens.to(device=device, dtype=torch.int32)


def flash_attention_ref(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_lens: Tensor | None = None,
    k_lens: Tensor | None = None,
    sm_scale: float | None = None,
    upcast: bool = True,
) -> Tensor:
    """What :func:`flash_attention` computes, in plain PyTorch (differentiable).

    ``upcast=True`` computes in float32 (the accuracy reference); ``upcast=False`` computes in the
    input dtype, which is how PyTorch itself would do it in low precision (the error yardstick).
    """
    b, _, length, dim = q.shape
    scale = 1.0 / math.sqrt(dim) if sm_scale is None else sm_scale
    q_lens = _lengths_or_full(q_lens, b, length, q.device)
    k_lens = _lengths_or_full(k_lens, b, k.size(2), q.device)
    work = torch.float32 if upcast else q.dtype
    scores = torch.matmul(q.to(work), k.to(work).transpose(-2, -1)) * scale  # (B, H, L, S)
    key_ok = torch.arange(k.size(2), device=q.device) < k_lens[:, None]  # (B, S)
    row_ok = torch.arange(length, device=q.device) < q_lens[:, None]  # (B, L)
    row_ok = row_ok & (k_lens[:, None] > 0)
    # Rows without keys would be softmax over all -inf (NaN): let them see everything, then zero.
    keep = key_ok[:, None, None, :] | ~row_ok[:, None, :, None]
    probs = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
    out = torch.matmul(probs, v.to(work)) * row_ok[:, None, :, None].to(work)
    return out.to(q.dtype)


# ---- when the kernel can run ----------------------------------------------------------------


def _interpret_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _triton_module():
    """The private kernel module, imported on first use (see its docstring for why)."""
    from . import flash_attention_triton

    return flash_attention_triton


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def kernel_available(q: Tensor) -> str | None:
    """``None`` when the Triton kernel can run on tensors like ``q``, else the reason it cannot.

    It runs on CUDA tensors, and on CPU tensors when ``TRITON_INTERPRET=1`` was set before the
    kernels were first used (Triton's interpreter, for tests). Inputs must be float32, float16 or
    bfloat16 with a head dim of at most 128.
    """
    if not _has_triton():
        return "triton is not installed"
    if q.dtype not in DTYPES:
        return f"dtype {q.dtype} is not one of {[str(d) for d in DTYPES]}"
    if q.size(-1) > MAX_HEAD_DIM:
        return f"head dim {q.size(-1)} is over {MAX_HEAD_DIM}"
    if q.is_cuda:
        return (
            None if not _triton_module().INTERPRETED else "kernels were built for the interpreter"
        )
    if q.device.type == "cpu" and _interpret_requested():
        return None if _triton_module().INTERPRETED else "kernels were built for the GPU"
    return f"no CUDA device for tensors on {q.device} (set TRITON_INTERPRET=1 to interpret)"


# ---- launchers ------------------------------------------------------------------------------


def _launch_args(q: Tensor, k: Tensor, block_m: int, block_n: int) -> dict:
    """Constexpr and tuning arguments shared by the three kernels."""
    fp32_exact = q.dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32
    args = {
        "BLOCK_D": max(16, _next_pow2(q.size(-1))),
        # fp32 dot products are tf32 on tensor cores unless torch was told to be exact.
        "PRECISION": "ieee" if fp32_exact or q.device.type == "cpu" else "tf32",
        # Triton's interpreter (CPU) gets bfloat16 tl.dot wrong; see _dot in the kernels.
        "UPCAST": q.dtype == torch.bfloat16 and q.device.type == "cpu",
    }
    if block_m > 0:
        args.update(BLOCK_M=block_m, BLOCK_N=block_n)
    return args


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _len_bucket(q: Tensor, k: Tensor) -> int:
    return _next_pow2(max(q.size(2), k.size(2)))


def _fwd_launch(q, k, v, q_lens, k_lens, sm_scale, block_m, block_n):
    """(out (B, H, L, D) in q's dtype, lse (B, H, L) float32 base 2)."""
    tk = _triton_module()
    b, h, length, dim = q.shape
    out = torch.empty_like(q)
    lse = torch.empty((b, h, length), device=q.device, dtype=torch.float32)
    kernel = tk.fwd if block_m > 0 else tk.fwd_tuned
    grid = lambda meta: (_cdiv(length, meta["BLOCK_M"]), b * h)
    kernel[grid](
        q, k, v, out, lse, q_lens, k_lens, sm_scale * tk.LOG2E,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        h, length, dim, _len_bucket(q, k),
        **_launch_args(q, k, block_m, block_n),
    )  # fmt: skip
    return out, lse


def _bwd_launch(do, q, k, v, out, lse, q_lens, k_lens, sm_scale, block_m, block_n):
    """(dq, dk, dv) shaped like q, k, v."""
    tk = _triton_module()
    b, h, length, dim = q.shape
    do = do.contiguous()
    delta = (out.float() * do.float()).sum(-1)  # (B, H, L): rowsum(O * dO), 0 on padded rows
    dq = torch.empty_like(do)  # shares do's strides, as the kernels assume
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    if dk.stride() != k.stride() or dv.stride() != v.stride():
        k, v = k.contiguous(), v.contiguous()
        dk, dv = torch.empty_like(k), torch.empty_like(v)
    common = (q_lens, k_lens, sm_scale * tk.LOG2E, sm_scale)
    strides = (*q.stride(), *k.stride(), *v.stride(), *do.stride())
    args = _launch_args(q, k, block_m, block_n)
    kernel = tk.bwd_dkdv if block_m > 0 else tk.bwd_dkdv_tuned
    grid = lambda meta: (_cdiv(k.size(2), meta["BLOCK_N"]), b * h)
    kernel[grid](
        q, k, v, do, lse, delta, dk, dv, *common, *strides,
        h, length, k.size(2), dim, _len_bucket(q, k), **args,
    )  # fmt: skip
    kernel = tk.bwd_dq if block_m > 0 else tk.bwd_dq_tuned
    grid = lambda meta: (_cdiv(length, meta["BLOCK_M"]), b * h)
    kernel[grid](
        q, k, v, do, lse, delta, dq, *common, *strides,
        h, length, dim, _len_bucket(q, k), **args,
    )  # fmt: skip
    return dq, dk, dv


# ---- torch ops: what torch.compile sees ---------------------------------------------------


@torch.library.custom_op("speechkit::flash_attn_fwd", mutates_args=())
def _fwd_op(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_lens: Tensor,
    k_lens: Tensor,
    sm_scale: float,
    block_m: int,
    block_n: int,
) -> tuple[Tensor, Tensor]:
    """Forward kernel; ``block_m == 0`` lets the autotuner pick the blocks."""
    return _fwd_launch(q, k, v, q_lens, k_lens, sm_scale, block_m, block_n)


@_fwd_op.register_fake
def _(q, k, v, q_lens, k_lens, sm_scale, block_m, block_n):
    return torch.empty_like(q), q.new_empty(q.shape[:-1], dtype=torch.float32)


@torch.library.custom_op("speechkit::flash_attn_bwd", mutates_args=())
def _bwd_op(
    do: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    q_lens: Tensor,
    k_lens: Tensor,
    sm_scale: float,
    block_m: int,
    block_n: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Backward kernels: (dq, dk, dv)."""
    return _bwd_launch(do, q, k, v, out, lse, q_lens, k_lens, sm_scale, block_m, block_n)


@_bwd_op.register_fake
def _(do, q, k, v, out, lse, q_lens, k_lens, sm_scale, block_m, block_n):
    return torch.empty_like(do), torch.empty_like(k), torch.empty_like(v)


# ---- autograd -----------------------------------------------------------------------------


class FlashAttentionFunction(torch.autograd.Function):
    """Autograd of the kernels. Its ``setup_context``/``backward`` are also registered as the
    autograd formula of ``torch.ops.speechkit.flash_attn_fwd``, so both paths share one rule."""

    @staticmethod
    def forward(q, k, v, q_lens, k_lens, sm_scale, block_m, block_n):
        return _fwd_op(q, k, v, q_lens, k_lens, sm_scale, block_m, block_n)

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, q_lens, k_lens, sm_scale, block_m, block_n = inputs
        out, lse = output
        ctx.save_for_backward(q, k, v, out, lse, q_lens, k_lens)
        ctx.config = (sm_scale, block_m, block_n)

    @staticmethod
    def backward(ctx, d_out, _d_lse):
        q, k, v, out, lse, q_lens, k_lens = ctx.saved_tensors
        dq, dk, dv = _bwd_op(d_out, q, k, v, out, lse, q_lens, k_lens, *ctx.config)
        return dq, dk, dv, None, None, None, None, None


torch.library.register_autograd(
    "speechkit::flash_attn_fwd",
    FlashAttentionFunction.backward,
    setup_context=FlashAttentionFunction.setup_context,
)


# ---- public function ----------------------------------------------------------------------


def flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_lens: Tensor | None = None,
    k_lens: Tensor | None = None,
    sm_scale: float | None = None,
    block_sizes: tuple[int, int] | None = None,
) -> Tensor:
    """Non-causal attention of ``q`` (B, H, L, D) over ``k``, ``v`` (B, H, S, D) -> (B, H, L, D).

    ``q_lens``, ``k_lens``: (B,) integer tensors of valid (right-padded) query and key positions;
    ``None`` means the whole length is valid. Padded keys are never attended to; padded query
    rows, and every row of a sequence with ``k_lens[b] == 0``, output zeros and get zero
    gradients. ``sm_scale`` defaults to ``1 / sqrt(D)``. D may be any size up to 128 (the kernel
    pads its tile to the next power of two). ``block_sizes=(BLOCK_M, BLOCK_N)`` fixes the tile
    sizes (powers of two >= 16); ``None`` autotunes them on the GPU and uses (16, 32) under
    the interpreter.

    Runs the Triton kernel when :func:`kernel_available` says it can (CUDA tensors, or CPU tensors
    under ``TRITON_INTERPRET=1``), else :func:`flash_attention_ref` in float32 (cast back).
    Differentiable either way; the kernel path is a registered torch op that ``torch.compile``
    can trace.
    """
    if k.shape[:2] != q.shape[:2] or v.shape != k.shape or k.size(-1) != q.size(-1):
        raise ValueError(
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit "
            "(B, H, L, D), (B, H, S, D), (B, H, S, D)"
        )
    scale = 1.0 / math.sqrt(q.size(-1)) if sm_scale is None else float(sm_scale)
    if kernel_available(q) is not None:
        return flash_attention_ref(q, k, v, q_lens, k_lens, scale)
    b = q.size(0)
    q_lens = _lengths_or_full(q_lens, b, q.size(2), q.device)
    k_lens = _lengths_or_full(k_lens, b, k.size(2), q.device)
    if block_sizes is None:
        block_sizes = (16, 32) if q.device.type == "cpu" else (0, 0)
    k, v = k.to(q.dtype), v.to(q.dtype)
    out, _ = _fwd_op(q, k, v, q_lens, k_lens, scale, *block_sizes)
    return out
