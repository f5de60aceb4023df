"""Flash attention kernel vs the float32 reference, on small odd shapes.

Acceptance rule (as in flash-attention): in float16/bfloat16 the kernel's error against a float32
reference is at most twice PyTorch's own error in that precision, for the output and for dq, dk
and dv. In float32 the kernel must match tightly. On CPU the kernels run under Triton's
interpreter (see conftest.py), with 16 x 32 blocks so that several blocks and a ragged last
block are exercised.
"""

import pytest
import torch
from speechkit.kernels.flash_attention import FlashAttentionFunction

from speechkit.kernels import flash_attention, flash_attention_ref, kernel_available

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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_error_at_most_twice_pytorch(dtype):
    qkv, do = _inputs(2, 2, 97, 97, 40, dtype, seed=1)
    n = _lens(97, 45)
    got = _out_and_grads(_kernel, qkv, do, n, n)
    ref = _out_and_grads(flash_attention_ref, qkv, do, n, n, upcast=True)
    torch_lp = _out_and_grads(flash_attention_ref, qkv, do, n, n, upcast=False)
    # The fp32 reference of gradients: same formula, inputs upcast, grads of the upcast copies.
    qkv32 = [t.detach().float().requires_grad_() for t in qkv]
    ref = _out_and_grads(flash_attention_ref, qkv32, do.float(), n, n)
    for name, a, lp, r in zip(("out", "dq", "dk", "dv"), got, torch_lp, ref):
        err = (a.float() - r).abs().max().item()
        torch_err = (lp.float() - r).abs().max().item()
        assert err <= 2 * torch_err + 1e-5, f"{name}: kernel {err:.2e} vs torch {torch_err:.2e}"
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


def test_autograd_function_passes_gradcheck():
    """Finite differences in float32 (the kernel has no float64), hence the loose tolerances."""
    (q, k, v), _ = _inputs(1, 1, 19, 19, 16, torch.float32, seed=3)
    n = _lens(13)
    fn = lambda q, k, v: FlashAttentionFunction.apply(q, k, v, n, n, 0.25, *BLOCKS)[0]
    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-3, atol=5e-3, rtol=1e-2, fast_mode=True)


def test_head_dim_128_and_no_lengths():
    qkv, do = _inputs(1, 1, 20, 20, 128, torch.float32, seed=4)
    got = _out_and_grads(_kernel, qkv, do, None, None)
    ref = _out_and_grads(flash_attention_ref, qkv, do)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)


def test_shape_mismatch_is_rejected():
    q = torch.zeros(2, 2, 5, 16)
    with pytest.raises(ValueError, match="do not fit"):
        flash_attention(q, torch.zeros(2, 2, 5, 8), torch.zeros(2, 2, 5, 8))
