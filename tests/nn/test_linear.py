"""speechkit.nn.linear: the few-rows path agrees with the module and stays out of the way."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from speechkit.nn import linear as few
from speechkit.nn.attention import MultiHeadAttention
from speechkit.nn.feedforward import FeedForward


def _calls_addmm(monkeypatch) -> list:
    """Records the calls that take the ``W @ x.T`` path."""
    calls, real = [], torch.addmm
    monkeypatch.setattr(few.torch, "addmm", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 48), (5, 1, 48), (1, 3, 48), (7, 48)])
def test_few_rows_match_the_module(monkeypatch, bias, shape):
    torch.manual_seed(0)
    layer = nn.Linear(48, 96, bias=bias)
    x = torch.randn(*shape)
    calls = _calls_addmm(monkeypatch) if bias else []
    with torch.inference_mode():
        out = few.linear(layer, x)
        ref = layer(x)
    assert out.shape == ref.shape and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert len(calls) == int(bias)


def test_other_calls_run_the_module(monkeypatch):
    """More rows, a narrowing layer, autograd, other dtypes and hooked modules run the module."""
    calls = _calls_addmm(monkeypatch)
    wide, narrow = nn.Linear(16, 32), nn.Linear(32, 16)
    with torch.inference_mode():
        few.linear(wide, torch.randn(few.FEW_ROWS + 1, 16))
        few.linear(narrow, torch.randn(5, 32))
        few.linear(wide.double(), torch.randn(5, 16, dtype=torch.float64))
    wide = wide.float()
    x = torch.randn(5, 16, requires_grad=True)
    few.linear(wide, x).sum().backward()  # the module's own autograd path
    assert x.grad is not None and wide.weight.grad is not None
    seen = []
    wide.register_forward_hook(lambda *a: seen.append(1))
    with torch.inference_mode():
        few.linear(wide, torch.randn(5, 16))
    assert calls == [] and seen == [1]


def test_attention_and_ffn_steps_unchanged():
    """A decoding step's attention and FFN through the few-rows path equal F.linear's."""
    torch.manual_seed(1)
    mha, ffn = MultiHeadAttention(64, 4).eval(), FeedForward(64, 256).eval()
    x, mem = torch.randn(5, 1, 64), torch.randn(1, 30, 64)
    with torch.inference_mode():
        k, v = mha.project_kv(mem)
        got = mha.attend(x.reshape(1, 5, 64), k, v), ffn(x)
        few_rows, few.FEW_ROWS = few.FEW_ROWS, 0
        try:
            want = mha.attend(x.reshape(1, 5, 64), k, v), ffn(x)
        finally:
            few.FEW_ROWS = few_rows
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    ref = F.linear(F.gelu(F.linear(x, ffn.net[0].weight, ffn.net[0].bias)), ffn.net[3].weight)
    torch.testing.assert_close(got[1], ref + ffn.net[3].bias, rtol=1e-5, atol=1e-5)


needs_mkl = pytest.mark.skipif(
    not few.PackedWeight.available(), reason="torch built without MKL (the packed path is MKL's)"
)


@needs_mkl
@pytest.mark.parametrize("rows", [1, 3, few.PACKED_ROWS])
def test_packed_weight_matches_the_product(rows):
    torch.manual_seed(2)
    weight, x = torch.randn(300, 48), torch.randn(rows, 48)
    packed = few.PackedWeight()
    with torch.inference_mode():
        out = packed(weight, x)
    assert out is not None and out.shape == (rows, 300) and out.is_contiguous()
    torch.testing.assert_close(out, x @ weight.t(), rtol=1e-5, atol=1e-5)


@needs_mkl
def test_packed_weight_follows_a_changed_weight():
    """An in-place update (fine-tuning, load_state_dict) or another tensor repacks: never a
    product with a stale copy."""
    torch.manual_seed(3)
    layer, x = nn.Linear(48, 200, bias=False), torch.randn(4, 48)
    packed = few.PackedWeight()
    with torch.inference_mode():
        first = packed(layer.weight, x)
    with torch.no_grad():
        layer.weight.mul_(2)
    with torch.inference_mode():
        torch.testing.assert_close(packed(layer.weight, x), 2 * first, rtol=1e-5, atol=1e-5)
        assert packed(torch.randn(200, 48), x) is None  # an inference tensor: no version counter
    other = torch.randn(200, 48)
    with torch.inference_mode():
        torch.testing.assert_close(packed(other, x), x @ other.t(), rtol=1e-5, atol=1e-5)


def test_packed_weight_declines_other_calls():
    """Too many rows, autograd, other dtypes: None, so the caller multiplies its own way."""
    packed, weight = few.PackedWeight(), torch.randn(64, 16, requires_grad=True)
    with torch.inference_mode():
        assert packed(weight.detach(), torch.randn(few.PACKED_ROWS + 1, 16)) is None
        assert packed(weight.detach().double(), torch.randn(2, 16, dtype=torch.float64)) is None
    assert packed(weight, torch.randn(2, 16)) is None  # gradients wanted


@needs_mkl
def test_packed_weight_copies_start_empty():
    """A deep copy or a pickled copy of a packed weight carries no stale copy of the table."""
    import copy
    import pickle

    packed, weight = few.PackedWeight(), torch.randn(64, 16)
    with torch.inference_mode():
        packed(weight, torch.randn(2, 16))
    assert packed._packed is not None
    for other in (copy.deepcopy(packed), pickle.loads(pickle.dumps(packed))):
        assert other._packed is None and other._key is None


needs_half = pytest.mark.skipif(
    not few.HalfWeight.available(), reason="no half_linear CPU kernel on this CPU (x86-64 AVX2)"
)


def _half_exact(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).half().float()


@needs_half
@pytest.mark.parametrize("rows", [1, 5, few.HALF_ROWS])
@pytest.mark.parametrize("bias", [True, False])
def test_half_weight_matches_the_product(rows, bias):
    torch.manual_seed(4)
    weight, x = _half_exact(300, 48), torch.randn(rows, 48)
    b = torch.randn(300) if bias else None
    half = few.HalfWeight()
    with torch.inference_mode():
        out = half(weight, x, b)
    assert out is not None and out.shape == (rows, 300) and out.is_contiguous()
    torch.testing.assert_close(out, F.linear(x, weight, b), rtol=1e-5, atol=1e-5)


@needs_half
def test_half_weight_follows_a_changed_weight_and_declines_inexact_ones(caplog):
    """An in-place update repacks; a weight float16 cannot hold is never rounded: declined,
    with a warning, until it changes again."""
    torch.manual_seed(5)
    layer, x = nn.Linear(48, 200, bias=False), torch.randn(4, 48)
    with torch.no_grad():
        layer.weight.copy_(layer.weight.half().float())
    half = few.HalfWeight()
    with torch.inference_mode():
        first = half(layer.weight, x)
    with torch.no_grad():
        layer.weight.mul_(2)  # still float16 values
    with torch.inference_mode():
        torch.testing.assert_close(half(layer.weight, x), 2 * first, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        layer.weight.add_(1e-4)  # no longer float16 values
    with caplog.at_level("WARNING"), torch.inference_mode():
        assert half(layer.weight, x) is None
    assert "not exactly float16" in caplog.text
    with torch.inference_mode():
        assert half(_half_exact(200, 48), x) is None  # an inference tensor: no version counter


def test_half_weight_declines_other_calls():
    half, weight = few.HalfWeight(), _half_exact(64, 16).requires_grad_()
    with torch.inference_mode():
        assert half(weight.detach(), torch.randn(few.HALF_ROWS + 1, 16)) is None
        assert half(weight.detach().double(), torch.randn(2, 16, dtype=torch.float64)) is None
    assert half(weight, torch.randn(2, 16)) is None  # gradients wanted


@pytest.mark.parametrize("bias", [True, False])
def test_half_linears_share_the_parameters_and_swap_back(bias):
    """``half_linears`` swaps nn.Linear for HalfLinear and back with the same parameters and
    state dict; HalfLinear computes nn.Linear's function for any number of rows."""
    torch.manual_seed(6)
    ffn = FeedForward(32, 64, 0.0)
    with torch.no_grad():
        for p in ffn.parameters():
            p.copy_(p.half().float())
    if not bias:
        ffn.net[0].bias = None
    weights, state = [ffn.net[0].weight, ffn.net[3].weight], ffn.state_dict()
    x_few, x_many = torch.randn(5, 1, 32), torch.randn(3, 20, 32)
    with torch.inference_mode():
        ref = ffn(x_few), ffn(x_many)
    assert few.half_linears(ffn) == 2
    assert type(ffn.net[0]) is few.HalfLinear and ffn.net[0].weight is weights[0]
    assert ffn.state_dict().keys() == state.keys()
    with torch.inference_mode():
        got = ffn(x_few), ffn(x_many)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    out = ffn(x_few)  # autograd: the float32 weights, gradients flow
    out.sum().backward()
    assert ffn.net[0].weight.grad is not None
    assert few.half_linears(ffn) == 0  # nothing left to swap
    assert few.half_linears(ffn, on=False) == 2
    assert type(ffn.net[0]) is nn.Linear and ffn.net[3].weight is weights[1]


@needs_half
def test_half_linear_serves_a_step(monkeypatch):
    """A few-row call of a HalfLinear goes through the kernel."""
    served, real = [], few.HalfWeight.__call__
    monkeypatch.setattr(
        few.HalfWeight,
        "__call__",
        lambda self, *a: served.append(1) or real(self, *a),
    )
    layer = nn.Linear(16, 24)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(p.half().float())
    seq = nn.Sequential(layer)
    few.half_linears(seq)
    layer = seq[0]
    with torch.inference_mode():
        out = few.linear(layer, torch.randn(3, 16))
    assert served == [1] and out.shape == (3, 24)


def test_is_half_exact_checks_every_chunk():
    w = _half_exact(50, 8)
    assert few.is_half_exact(w) and few.is_half_exact(w, rows=7)
    w[43, 5] += 1e-4  # one value, in the last chunk
    assert not few.is_half_exact(w, rows=7) and not few.is_half_exact(w)
