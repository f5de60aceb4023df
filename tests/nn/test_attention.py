"""Attention dispatch: backends agree, masks keep what they say, no NaN on empty rows.

The ``triton`` backend here is only checked where it cannot run (CPU, no interpreter, or no
``speechkit.kernels``): it must fall back to ``sdpa`` with one warning that says why. The kernel itself, and dispatch into it under
``TRITON_INTERPRET=1``, are tested in tests/kernels/.
"""

import importlib.util
import logging
import sys

import pytest
import torch

from speechkit.nn import attention as attention_module
from speechkit.nn.attention import (
    MultiHeadAttention,
    attention_calls,
    reset_attention_calls,
    resolve_backend,
    scaled_dot_product,
)
from speechkit.nn.masks import causal_mask, lengths_to_mask

if importlib.util.find_spec("triton") is not None:
    # Decorate the Triton kernels now, under the interpreter tests/conftest.py turns on: the
    # fallback test below unsets TRITON_INTERPRET, and kernels first imported there could not
    # run in the interpreter in later test modules (tests/models).
    import speechkit.kernels.flash_attention_triton  # noqa: F401


def _qkv(b=2, h=3, lq=5, s=7, dh=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, dh, generator=g) for n in (lq, s, s)]


@pytest.mark.parametrize("dh", [8, 11])
def test_sdpa_matches_eager_with_key_mask(dh):
    q, k, v = _qkv(dh=dh)
    mask = lengths_to_mask(torch.tensor([7, 4]), 7)[:, None, None, :]
    ref = scaled_dot_product(q, k, v, mask, backend="eager")
    out = scaled_dot_product(q, k, v, mask, backend="sdpa")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_eager_matches_explicit_softmax():
    q, k, v = _qkv()
    scores = q @ k.transpose(-2, -1) / (q.size(-1) ** 0.5)
    expected = torch.softmax(scores, -1) @ v
    torch.testing.assert_close(scaled_dot_product(q, k, v, backend="eager"), expected)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_masked_keys_do_not_matter(backend):
    q, k, v = _qkv()
    mask = lengths_to_mask(torch.tensor([7, 3]), 7)[:, None, None, :]
    out = scaled_dot_product(q, k, v, mask, backend=backend)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 3:] = 100.0
    v2[1, :, 3:] = -50.0
    out2 = scaled_dot_product(q, k2, v2, mask, backend=backend)
    torch.testing.assert_close(out, out2)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_fully_masked_rows_give_zeros_not_nan(backend):
    q, k, v = _qkv()
    mask = lengths_to_mask(torch.tensor([7, 0]), 7)[:, None, None, :]
    out = scaled_dot_product(q, k, v, mask, backend=backend)
    assert torch.isfinite(out).all()
    assert torch.all(out[1] == 0)
    assert out[0].abs().sum() > 0


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_causal_mask_blocks_future(backend):
    q, k, v = _qkv(lq=6, s=6)
    mask = causal_mask(6, 0)
    out = scaled_dot_product(q, k, v, mask, backend=backend)
    v2 = v.clone()
    v2[:, :, 4:] += 10.0  # change the future of queries 0..3
    out2 = scaled_dot_product(q, k, v2, mask, backend=backend)
    torch.testing.assert_close(out[:, :, :4], out2[:, :, :4])
    assert not torch.allclose(out[:, :, 4:], out2[:, :, 4:])


def test_causal_mask_with_offset():
    m = causal_mask(2, 3)
    assert m.shape == (2, 5)
    assert m[0].tolist() == [True, True, True, True, False]
    assert m[1].all()


def test_triton_falls_back_to_sdpa_with_one_warning(caplog, monkeypatch):
    # Without CUDA and without the interpreter the kernel cannot run on these CPU tensors.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(attention_module, "_warned", set())
    reset_attention_calls()
    q, k, v = _qkv()
    lens = torch.tensor([7, 4])
    mask = lengths_to_mask(lens, 7)[:, None, None, :]
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        out = scaled_dot_product(q, k, v, mask, backend="triton", key_lens=lens)
        scaled_dot_product(q, k, v, mask, backend="triton", key_lens=lens)
    assert attention_calls() == {"sdpa": 2}
    warnings = [r for r in caplog.records if "triton" in r.getMessage()]
    assert len(warnings) == 1
    assert "no CUDA device" in warnings[0].getMessage() and "'sdpa'" in warnings[0].getMessage()
    torch.testing.assert_close(out, scaled_dot_product(q, k, v, mask, backend="sdpa"))


def test_triton_resolves_to_sdpa_without_a_device(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(attention_module, "_warned", set())
    assert resolve_backend("triton") == "sdpa"
    assert resolve_backend("sdpa") == "sdpa"


def test_triton_without_the_kernels_package_says_how_to_install_it(caplog, monkeypatch):
    """A bare source checkout on PYTHONPATH has no speechkit.kernels (setup.py maps it)."""
    monkeypatch.setitem(sys.modules, "speechkit.kernels", None)  # import raises ImportError
    monkeypatch.setattr(attention_module, "_warned", set())
    monkeypatch.setattr(attention_module, "_kernels_found", [])
    with caplog.at_level(logging.WARNING, logger="speechkit.nn.attention"):
        assert resolve_backend("triton") == "sdpa"
    (message,) = [r.getMessage() for r in caplog.records]
    assert "speechkit.kernels is not importable" in message and "pip install -e" in message


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="flash"):
        resolve_backend("flash")


def test_module_split_path_equals_self_attention():
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 4).eval()
    x = torch.randn(2, 5, 24)
    k, v = mha.project_kv(x)
    assert k.shape == (2, 4, 5, 6)
    torch.testing.assert_close(mha(x), mha.attend(x, k, v))


def test_eager_keeps_input_dtype():
    q, k, v = (t.to(torch.bfloat16) for t in _qkv())
    out = scaled_dot_product(q, k, v, backend="eager")
    assert out.dtype == torch.bfloat16


def test_a_mask_that_keeps_every_key_is_dropped_with_the_same_result(monkeypatch):
    q, k, v = _qkv(b=1, lq=4, s=1500, dh=64)
    full = torch.ones(1, 1, 1, 1500, dtype=torch.bool)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    masks = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    assert torch.equal(scaled_dot_product(q, k, v, full), expected)
    assert masks == [None]
    part = full.clone()
    part[..., -1] = False  # one padded key: the mask is kept
    out = scaled_dot_product(q, k, v, part)
    assert masks[-1] is not None and not torch.equal(out, expected)
    torch.testing.assert_close(out, sdpa(q, k[:, :, :-1], v[:, :, :-1]))


def test_blocked_keys_and_values_attend_like_sdpa():
    """``block_kv`` packs keys/values for the CPU kernel (``kernels/half_linear.py``); attention
    over them is sdpa's, with a mask only when it keeps every key."""
    pytest.importorskip("speechkit.kernels.half_linear")
    from speechkit.kernels.half_linear import kernel_available
    from speechkit.nn.attention import block_kv

    q, k, v = _qkv(b=2, lq=5, s=40, dh=16)
    if not kernel_available():
        assert block_kv(k, v) is None  # callers keep k and v
        return
    kp, vp = block_kv(k, v)
    assert kp.dim() == vp.dim() == 5
    reset_attention_calls()
    full = torch.ones(2, 1, 1, 40, dtype=torch.bool)
    out = scaled_dot_product(q, kp, vp, full)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v))
    assert attention_calls()["blocked"] == 1
    with pytest.raises(ValueError, match="every key"):
        scaled_dot_product(q, kp, vp, lengths_to_mask(torch.tensor([40, 30]), 40)[:, None, None])
    with pytest.raises(ValueError, match="without dropout"):
        scaled_dot_product(q, kp, vp, dropout_p=0.1)
    assert block_kv(k.requires_grad_(), v) is None  # training: autograd needs sdpa
    assert block_kv(k.detach().double(), v.double()) is None
