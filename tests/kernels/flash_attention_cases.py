"""Flash attention kernel vs the float32 reference, on small odd shapes, forward and backward.

Acceptance rule (as in flash-attention): in float16/bfloat16 the kernel's error against a float32
reference is at most twice PyTorch's own error in that precision, for the output and for dq, dk
and dv. In float32 the kernel must match tightly. On CPU the kernels run under Triton's
interpreter (see conftest.py), with 16 x 32 blocks so that several blocks and a ragged last
block are exercised. The shapes that break tiled kernels are here: head dims that are not powers
of two (40, 59, 80, 96, 111: the tile is padded to the next one), lengths 1, 17 and 1025 (one
row past a block), and batches whose lengths differ by exactly one block.
"""

import pytest
import torch

from speechkit.kernels import flash_attention, flash_attention_ref, kernel_available
from speechkit.kernels.flash_attention import FlashAttentionFunction

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: interpreted (conftest.py)
BLOCKS = (16, 32)


def _inputs(b, h, lq, s, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=g) for n in (lq, s, s))
    do = torch.randn(b, h, lq, d, generator=g)
    return [t.to(DEVICE, dtype).requires_grad_(t is not do) for t in (q, k, v)], do.to(
        DEVICE, dtype
    )


def _kernel(q, k, v, q_lens, k_lens):
    assert kernel_available(q) is None, "the test must exercise the kernel, not the fallback"
    return flash_attention(q, k, v, q_lens, k_lens, block_sizes=BLOCKS)


def _out_and_grads(fn, qkv, do, *args, **kw):
    out = fn(*qkv, *args, **kw)
    grads = torch.autograd.grad(out, qkv, do)
    return [out, *grads]


def _lens(*values):
    return torch.tensor(values, device=DEVICE)


def _assert_matches_fp32_reference(b, h, lq, s, d, q_lens, k_lens, blocks=BLOCKS, seed=0):
    """Output and dq, dk, dv of the kernel vs the float32 reference; padding stays zero."""
    qkv, do = _inputs(b, h, lq, s, d, torch.float32, seed=seed)
    q_lens, k_lens = _lens(*q_lens), _lens(*k_lens)
    assert kernel_available(qkv[0]) is None, "the test must exercise the kernel, not the fallback"
    kernel = lambda *a: flash_attention(*a, block_sizes=blocks)
    got = _out_and_grads(kernel, qkv, do, q_lens, k_lens)
    ref = _out_and_grads(flash_attention_ref, qkv, do, q_lens, k_lens)
    for name, a, r in zip(("out", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, r, atol=2e-5, rtol=1e-4, msg=name)
    out, dq, dk, dv = got
    for i, (nq, nk) in enumerate(zip(q_lens.tolist(), k_lens.tolist())):
        assert torch.all(out[i, :, nq:] == 0) and torch.all(dq[i, :, nq:] == 0)
        assert torch.all(dk[i, :, nk:] == 0) and torch.all(dv[i, :, nk:] == 0)
    return got


@pytest.mark.parametrize("lens", [(97, 1), (61, 0)])
def test_fp32_matches_reference_and_padding_is_zero(lens):
    qkv, do = _inputs(2, 2, 97, 97, 40, torch.float32)
    n = _lens(*lens)
    got = _out_and_grads(_kernel, qkv, do, n, n)
    ref = _out_and_grads(flash_attention_ref, qkv, do, n, n)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)
    out, dq, dk, dv = got
    short = lens[1]
    assert out[0].abs().sum() > 0 and dk[0].abs().sum() > 0
    for t in (out, dq, dk, dv):  # padded query rows and padded keys: exact zeros
        assert torch.all(t[1, :, short:] == 0)


def _assert_within_twice_torch_low_precision(qkv, do, n):
    """Kernel output and grads in fp16/bf16 are within twice the error of PyTorch's attention in
    the same precision, both against the fp32 reference (same formula, inputs upcast, grads of
    the upcast copies). Returns the kernel's (out, dq, dk, dv)."""
    got = _out_and_grads(_kernel, qkv, do, n, n)
    torch_lp = _out_and_grads(flash_attention_ref, qkv, do, n, n, upcast=False)
    qkv32 = [t.detach().float().requires_grad_() for t in qkv]
    ref = _out_and_grads(flash_attention_ref, qkv32, do.float(), n, n)
    for name, a, lp, r in zip(("out", "dq", "dk", "dv"), got, torch_lp, ref):
        err = (a.float() - r).abs().max().item()
        torch_err = (lp.float() - r).abs().max().item()
        assert err <= 2 * torch_err + 1e-5, f"{name}: kernel {err:.2e} vs torch {torch_err:.2e}"
    return got


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_error_at_most_twice_pytorch(dtype):
    qkv, do = _inputs(2, 2, 97, 97, 40, dtype, seed=1)
    got = _assert_within_twice_torch_low_precision(qkv, do, _lens(97, 45))
    assert torch.all(got[0][1, :, 45:] == 0)


def test_different_query_and_key_lengths():
    """Cross-shaped call: L != S, q_lens != k_lens, one sequence with queries but no keys."""
    qkv, do = _inputs(2, 1, 33, 70, 32, torch.float32, seed=2)
    q_lens, k_lens = _lens(33, 20), _lens(70, 0)
    got = _out_and_grads(_kernel, qkv, do, q_lens, k_lens)
    ref = _out_and_grads(flash_attention_ref, qkv, do, q_lens, k_lens)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)
    assert torch.all(got[0][1] == 0)  # no keys: zeros, not NaN


def test_autograd_function_matches_finite_differences():
    """The backward pass of the autograd Function against central finite differences of its
    forward, along random directions (gradcheck's fast mode, written out: one backward call per
    graph; ``torch.autograd.gradcheck``'s repeated backward passes over one retained graph
    crashed Triton's CPU interpreter twice in full-suite runs). float32, as the kernel has no
    float64, hence eps 1e-3 and the loose tolerance."""
    (q, k, v), _ = _inputs(1, 1, 19, 19, 16, torch.float32, seed=3)
    n = _lens(13)
    fn = lambda q, k, v: FlashAttentionFunction.apply(q, k, v, n, n, 0.25, *BLOCKS)[0]
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        w = torch.randn(q.shape, generator=g).to(DEVICE)  # output cotangent
        dirs = [torch.randn(t.shape, generator=g).to(DEVICE) for t in (q, k, v)]
        grads = torch.autograd.grad(fn(q, k, v), (q, k, v), w)
        analytical = sum((gr * d).sum() for gr, d in zip(grads, dirs)).item()
        eps = 1e-3
        with torch.no_grad():
            plus = fn(*(t + eps * d for t, d in zip((q, k, v), dirs)))
            minus = fn(*(t - eps * d for t, d in zip((q, k, v), dirs)))
        numerical = ((plus - minus) * w).sum().item() / (2 * eps)
        assert analytical == pytest.approx(numerical, rel=1e-2, abs=5e-3)
        assert abs(analytical) > 1e-2  # the check compares something, not two zeros


def test_head_dim_128_and_no_lengths():
    qkv, do = _inputs(1, 1, 20, 20, 128, torch.float32, seed=4)
    got = _out_and_grads(_kernel, qkv, do, None, None)
    ref = _out_and_grads(flash_attention_ref, qkv, do)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("d", [59, 80, 96, 111])
def test_head_dims_that_are_not_powers_of_two(d):
    """The tile is the next power of two (64 or 128); the extra columns must stay zero."""
    out, *_ = _assert_matches_fp32_reference(2, 1, 37, 37, d, (37, 20), (37, 20), seed=d)
    assert out[0].abs().sum() > 0


@pytest.mark.parametrize("n, lens", [(1, (1, 0)), (17, (17, 16)), (17, (1, 17))])
def test_lengths_one_and_one_past_a_block(n, lens):
    _assert_matches_fp32_reference(2, 2, n, n, 16, lens, lens, seed=n)


@pytest.mark.parametrize("lens", [(64, 48, 32), (65, 33, 1)])
def test_batch_lengths_one_block_apart(lens):
    """Neighbouring rows end exactly one 16-row query block (or one 32-key block) apart, and
    on or one past a block edge: the loop bounds must not borrow a neighbour's block."""
    _assert_matches_fp32_reference(3, 1, max(lens), max(lens), 24, lens, lens)


def test_length_1025_with_large_blocks():
    """One row past 1024 with 64 x 64 tiles: a last block holding a single valid row and key
    (large tiles keep the interpreter fast)."""
    _assert_matches_fp32_reference(2, 1, 1025, 1025, 16, (1025, 961), (1025, 961), (64, 64))


@pytest.mark.parametrize("dtype, d", [(torch.bfloat16, 80), (torch.float16, 96)])
def test_low_precision_at_odd_head_dims(dtype, d):
    qkv, do = _inputs(2, 1, 33, 33, d, dtype, seed=5)
    _assert_within_twice_torch_low_precision(qkv, do, _lens(33, 17))


def test_shape_mismatch_is_rejected():
    q = torch.zeros(2, 2, 5, 16)
    with pytest.raises(ValueError, match="do not fit"):
        flash_attention(q, torch.zeros(2, 2, 5, 8), torch.zeros(2, 2, 5, 8))


class _AddressCheck:
    """Stands in for the interpreter's C++ load/store module: every address a load or store
    would touch (its mask on) must lie inside the storage of one of the launch's tensor
    arguments, else it raises before anything is read or written."""

    def __init__(self, real):
        self.real, self.spans, self.checked = real, [], 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def _check(self, what, ptrs, mask, itemsize):
        import numpy as np

        ptrs = ptrs[np.broadcast_to(mask, ptrs.shape).astype(bool)]
        inside = np.zeros(ptrs.shape, dtype=bool)
        for start, nbytes in self.spans:
            inside |= (ptrs >= start) & (ptrs + itemsize <= start + nbytes)
        self.checked += ptrs.size
        if not inside.all():
            raise AssertionError(f"{what} of {int((~inside).sum())} elements outside the tensors")

    def load(self, ptrs, mask, other, dtype):
        import numpy as np

        self._check("load", ptrs, mask, np.dtype(dtype).itemsize)
        return self.real.load(ptrs, mask, other, dtype)

    def store(self, ptrs, value, mask):
        self._check("store", ptrs, mask, value.dtype.itemsize)
        return self.real.store(ptrs, value, mask)


@pytest.fixture
def address_check(monkeypatch):
    from triton.runtime import interpreter

    check = _AddressCheck(interpreter._interpreter)
    init = interpreter.GridExecutor._init_args_hst

    def init_and_record(self, args, kwargs):
        args_hst, kwargs_hst = init(self, args, kwargs)
        tensors = [a for a in (*args_hst, *kwargs_hst.values()) if isinstance(a, torch.Tensor)]
        check.spans = [
            (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in tensors
        ]
        return args_hst, kwargs_hst

    monkeypatch.setattr(interpreter, "_interpreter", check)
    monkeypatch.setattr(interpreter.GridExecutor, "_init_args_hst", init_and_record)
    return check


@pytest.mark.skipif(DEVICE != "cpu", reason="checks the interpreter (on a GPU: compute-sanitizer)")
@pytest.mark.parametrize(
    "dtype, d, lens, transposed",
    [(torch.float32, 16, (23, 6), False), (torch.float32, 40, (17, 0), True),
     (torch.bfloat16, 59, (9, 33), False)],
)  # fmt: skip
def test_every_load_and_store_stays_inside_the_tensors(address_check, dtype, d, lens, transposed):
    """The interpreter reads and writes through raw pointers, so an address outside the kernel's
    tensors would corrupt the heap (kernels/README.md, Known issue). Forward and backward, with
    padded and empty sequences, an odd head dim, and q, k, v laid out (B, L, H, D) as the model's
    attention passes them."""
    n = max(lens)
    qkv, do = _inputs(2, 2, n, n, d, dtype, seed=d)
    if transposed:
        qkv = [
            t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_() for t in qkv
        ]
    got = _out_and_grads(_kernel, qkv, do, _lens(*lens), _lens(*lens))
    assert address_check.checked > 0 and all(torch.isfinite(g).all() for g in got)


@pytest.mark.skipif(DEVICE != "cpu", reason="checks the interpreter (on a GPU: compute-sanitizer)")
def test_the_address_check_catches_a_store_past_the_end(address_check):
    import triton
    import triton.language as tl

    @triton.jit
    def store_one_past(out, n):
        offs = tl.arange(0, 16)
        tl.store(out + offs, offs.to(tl.float32), mask=offs <= n)  # one past the last element

    out = torch.zeros(8, device=DEVICE)
    with pytest.raises(Exception, match="store of 1 elements outside the tensors"):
        store_one_past[(1,)](out, 8)
    assert torch.all(out == 0)  # refused before anything was written
