"""Private Triton kernels of :mod:`speechkit.kernels.flash_attention` (import it, not this file).

Three kernels, each one program per (block of rows, batch x head):

* ``_fwd``: output and log-sum-exp of one block of queries (online softmax over key blocks).
* ``_bwd_dkdv``: dK and dV of one block of keys (loop over query blocks).
* ``_bwd_dq``: dQ of one block of queries (loop over key blocks).

Padding is handled by loop bounds, not by masking a full score matrix: a program loops only up to
its sequence's valid length, and a block that lies wholly in the padding runs no loop at all and
only stores zeros. Only the one block that straddles a length is masked. Shapes: B batch, H
heads, L query length, S key length, D head dim (any size up to 128; the tile is ``BLOCK_D``,
the next power of two, with the extra columns loaded as zeros).

The softmax runs in base 2 (``exp2``) with ``qk_scale = sm_scale * log2(e)``; the stored
log-sum-exp ``lse`` (B, H, L) float32 is in that base too, and 0 for rows with no keys.

This module is imported lazily: ``triton.jit`` decides when the module is imported whether the
kernels are compiled for a GPU or run by the CPU interpreter (``TRITON_INTERPRET=1``), and
:data:`INTERPRETED` records which.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton import knobs

INTERPRETED = bool(knobs.runtime.interpret)

LOG2E = 1.4426950408889634


@triton.jit
def _tile_ptrs(base, off_b, off_h, stride_b, stride_h, stride_t, stride_d, offs_t, offs_d):
    """Pointers to a (len(offs_t), BLOCK_D) tile of one (batch, head) of a (B, H, T, D) tensor."""
    base = base + off_b.to(tl.int64) * stride_b + off_h.to(tl.int64) * stride_h
    return base + offs_t[:, None] * stride_t + offs_d[None, :] * stride_d


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """``a @ b`` accumulated in float32. ``UPCAST`` multiplies in float32: exact for bfloat16
    products, and needed under the interpreter, whose bfloat16 ``tl.dot`` returns garbage."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _fwd(
    Q, K, V, Out, Lse, QLens, KLens, qk_scale,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    H, L, HEAD_DIM, len_bucket,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Out[b, h, m] = softmax(q k^T * sm_scale) v over valid keys; zeros for padded rows."""
    start_m = tl.program_id(0) * BLOCK_M
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H
    q_len = tl.load(QLens + off_b)
    k_len = tl.load(KLens + off_b)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    row_ok = offs_m < q_len

    q_ptrs = _tile_ptrs(Q, off_b, off_h, stride_qb, stride_qh, stride_qm, stride_qd, offs_m, offs_d)
    q = tl.load(q_ptrs, mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    k_ptrs = _tile_ptrs(K, off_b, off_h, stride_kb, stride_kh, stride_kn, stride_kd, offs_n, offs_d)
    v_ptrs = _tile_ptrs(V, off_b, off_h, stride_vb, stride_vh, stride_vn, stride_vd, offs_n, offs_d)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    # A block wholly in the query padding visits no keys: its rows end as zeros below.
    hi = tl.where(start_m < q_len, k_len, 0)
    for start_n in range(0, hi, BLOCK_N):
        key_ok = (start_n + offs_n) < k_len
        kv_mask = key_ok[:, None] & d_ok[None, :]
        k = tl.load(k_ptrs + start_n * stride_kn, mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST) * qk_scale  # (BLOCK_M, BLOCK_N)
        s = tl.where(key_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(v_ptrs + start_n * stride_vn, mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, PRECISION, UPCAST)
        m_i = m_new

    has_keys = l_i > 0.0  # False for padded rows and for rows of a sequence with no keys
    out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    out = tl.where(row_ok[:, None], out, 0.0)
    lse = tl.where(has_keys & row_ok, m_i + tl.log2(tl.where(has_keys, l_i, 1.0)), 0.0)
    o_ptrs = _tile_ptrs(
        Out, off_b, off_h, stride_ob, stride_oh, stride_om, stride_od, offs_m, offs_d
    )
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=(offs_m < L)[:, None] & d_ok[None, :])
    tl.store(Lse + off_bh.to(tl.int64) * L + offs_m, lse, mask=offs_m < L)


@triton.jit
def _bwd_dkdv(
    Q, K, V, DO, Lse, Delta, DK, DV, QLens, KLens, qk_scale, sm_scale,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_gb, stride_gh, stride_gm, stride_gd,
    H, L, S, HEAD_DIM, len_bucket,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """dV_j = sum_i P_ij dO_i and dK_j = sm_scale sum_i dS_ij Q_i for one block of keys j.

    ``DO`` (B, H, L, D) shares its strides with ``DQ`` (stride_g*); ``DK``/``DV`` share K's.
    """
    start_n = tl.program_id(0) * BLOCK_N
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H
    q_len = tl.load(QLens + off_b)
    k_len = tl.load(KLens + off_b)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    key_ok = offs_n < k_len
    kv_mask = key_ok[:, None] & d_ok[None, :]

    k_ptrs = _tile_ptrs(K, off_b, off_h, stride_kb, stride_kh, stride_kn, stride_kd, offs_n, offs_d)
    v_ptrs = _tile_ptrs(V, off_b, off_h, stride_vb, stride_vh, stride_vn, stride_vd, offs_n, offs_d)
    k = tl.load(k_ptrs, mask=kv_mask, other=0.0)
    v = tl.load(v_ptrs, mask=kv_mask, other=0.0)
    q_ptrs = _tile_ptrs(Q, off_b, off_h, stride_qb, stride_qh, stride_qm, stride_qd, offs_m, offs_d)
    do_ptrs = _tile_ptrs(
        DO, off_b, off_h, stride_gb, stride_gh, stride_gm, stride_gd, offs_m, offs_d
    )
    row_base = off_bh.to(tl.int64) * L

    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    hi = tl.where(start_n < k_len, q_len, 0)  # a block of padded keys visits no queries
    for start_m in range(0, hi, BLOCK_M):
        row_ok = (start_m + offs_m) < q_len
        qd_mask = row_ok[:, None] & d_ok[None, :]
        q = tl.load(q_ptrs + start_m * stride_qm, mask=qd_mask, other=0.0)
        do = tl.load(do_ptrs + start_m * stride_gm, mask=qd_mask, other=0.0)
        lse = tl.load(Lse + row_base + start_m + offs_m, mask=row_ok, other=0.0)
        delta = tl.load(Delta + row_base + start_m + offs_m, mask=row_ok, other=0.0)
        s_t = _dot(k, tl.trans(q), PRECISION, UPCAST) * qk_scale  # (BLOCK_N, BLOCK_M)
        p_t = tl.exp2(s_t - lse[None, :])
        p_t = tl.where(key_ok[:, None] & row_ok[None, :], p_t, 0.0)
        dv += _dot(p_t.to(do.dtype), do, PRECISION, UPCAST)
        dp_t = _dot(v, tl.trans(do), PRECISION, UPCAST)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += _dot(ds_t.to(q.dtype), q, PRECISION, UPCAST)

    store_mask = (offs_n < S)[:, None] & d_ok[None, :]
    dk_ptrs = _tile_ptrs(
        DK, off_b, off_h, stride_kb, stride_kh, stride_kn, stride_kd, offs_n, offs_d
    )
    dv_ptrs = _tile_ptrs(
        DV, off_b, off_h, stride_vb, stride_vh, stride_vn, stride_vd, offs_n, offs_d
    )
    tl.store(dk_ptrs, (dk * sm_scale).to(DK.dtype.element_ty), mask=store_mask)
    tl.store(dv_ptrs, dv.to(DV.dtype.element_ty), mask=store_mask)


@triton.jit
def _bwd_dq(
    Q, K, V, DO, Lse, Delta, DQ, QLens, KLens, qk_scale, sm_scale,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_gb, stride_gh, stride_gm, stride_gd,
    H, L, HEAD_DIM, len_bucket,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """dQ_i = sm_scale sum_j dS_ij K_j for one block of queries i; zeros for padded rows.

    ``DO`` and ``DQ`` share their strides (stride_g*).
    """
    start_m = tl.program_id(0) * BLOCK_M
    off_bh = tl.program_id(1)
    off_b = off_bh // H
    off_h = off_bh % H
    q_len = tl.load(QLens + off_b)
    k_len = tl.load(KLens + off_b)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    row_ok = offs_m < q_len
    qd_mask = row_ok[:, None] & d_ok[None, :]

    q_ptrs = _tile_ptrs(Q, off_b, off_h, stride_qb, stride_qh, stride_qm, stride_qd, offs_m, offs_d)
    do_ptrs = _tile_ptrs(
        DO, off_b, off_h, stride_gb, stride_gh, stride_gm, stride_gd, offs_m, offs_d
    )
    q = tl.load(q_ptrs, mask=qd_mask, other=0.0)
    do = tl.load(do_ptrs, mask=qd_mask, other=0.0)
    row_base = off_bh.to(tl.int64) * L
    lse = tl.load(Lse + row_base + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(Delta + row_base + offs_m, mask=row_ok, other=0.0)
    k_ptrs = _tile_ptrs(K, off_b, off_h, stride_kb, stride_kh, stride_kn, stride_kd, offs_n, offs_d)
    v_ptrs = _tile_ptrs(V, off_b, off_h, stride_vb, stride_vh, stride_vn, stride_vd, offs_n, offs_d)

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    hi = tl.where(start_m < q_len, k_len, 0)  # a block of padded queries visits no keys
    for start_n in range(0, hi, BLOCK_N):
        key_ok = (start_n + offs_n) < k_len
        kv_mask = key_ok[:, None] & d_ok[None, :]
        k = tl.load(k_ptrs + start_n * stride_kn, mask=kv_mask, other=0.0)
        v = tl.load(v_ptrs + start_n * stride_vn, mask=kv_mask, other=0.0)
        s = _dot(q, tl.trans(k), PRECISION, UPCAST) * qk_scale  # (BLOCK_M, BLOCK_N)
        p = tl.exp2(s - lse[:, None])
        p = tl.where(row_ok[:, None] & key_ok[None, :], p, 0.0)
        dp = _dot(do, tl.trans(v), PRECISION, UPCAST)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, PRECISION, UPCAST)

    dq_ptrs = _tile_ptrs(
        DQ, off_b, off_h, stride_gb, stride_gh, stride_gm, stride_gd, offs_m, offs_d
    )
    tl.store(
        dq_ptrs, (dq * sm_scale).to(DQ.dtype.element_ty), mask=(offs_m < L)[:, None] & d_ok[None, :]
    )


# Autotuned twins for real GPUs (H100: BLOCK_M/BLOCK_N 64/128, 4/8 warps, 2/3 stages). The key is
# the head dim and the power-of-two bucket of the padded length, so a batch of a new length
# reuses the tuned choice of its bucket instead of tuning again; the tensor dtypes are part of
# the key as well. Configs that run out of shared memory are skipped by the autotuner.
_CONFIGS = [
    triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
    for bm in (64, 128)
    for bn in (64, 128)
    for w in (4, 8)
    for s in (2, 3)
]
_KEY = ["HEAD_DIM", "len_bucket"]
fwd_tuned = triton.autotune(configs=_CONFIGS, key=_KEY)(_fwd)
bwd_dkdv_tuned = triton.autotune(configs=_CONFIGS, key=_KEY)(_bwd_dkdv)
bwd_dq_tuned = triton.autotune(configs=_CONFIGS, key=_KEY)(_bwd_dq)
fwd = _fwd
bwd_dkdv = _bwd_dkdv
bwd_dq = _bwd_dq
