"""speechkit.nn.int8: dynamic int8 Linear layers with 8-bit activations where the CPU allows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speechkit.nn.int8 import Int8Linear, full_range_is_exact, quantize_linears
from speechkit.nn.linear import HalfLinear, half_linears


def _outlier_inputs(rows: int, dim: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, dim, generator=g)
    x[:, 3] *= 8.0  # one large channel, as after a Transformer's LayerNorm
    return x


def test_every_linear_becomes_int8_and_the_copy_leaves_the_float_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 16))
    copy = quantize_linears(model)
    assert all(type(m) is nn.Linear for m in (model[0], model[2]))
    assert all(type(m) is Int8Linear for m in (copy[0], copy[2]))
    x = _outlier_inputs(10, 32)
    ref = model(x)
    assert ((copy(x) - ref).norm() / ref.norm()) < 0.05
    assert quantize_linears(model, inplace=True) is model and type(model[0]) is Int8Linear


def test_float16_read_layers_are_quantised_too():
    """A HalfLinear (nn/linear.py: a Linear whose steps read a float16 copy) is a Linear
    layer to int8; the float model keeps its own layers."""
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 16))
    assert half_linears(model) == 2
    copy = quantize_linears(model)
    assert all(type(m) is Int8Linear for m in (copy[0], copy[2]))
    assert all(type(m) is HalfLinear for m in (model[0], model[2]))


def test_full_range_activations_are_used_where_exact_and_halve_the_error():
    torch.manual_seed(0)
    lin = nn.Linear(384, 256)
    ours = quantize_linears(nn.Sequential(lin), act_scales="tensor")[0]
    packed = ours._packed_params._packed_params
    x = _outlier_inputs(200, 384)
    ref = lin(x)
    err = lambda y: float((y - ref).norm() / ref.norm())  # noqa: E731
    seven_bits = err(torch.ops.quantized.linear_dynamic(x, packed, True))  # torch's module
    if full_range_is_exact():
        assert err(ours(x)) < 0.7 * seven_bits
    else:  # a CPU whose int8 kernel saturates at 8 bits: torch's 7 bits, the same result
        assert torch.equal(ours(x), torch.ops.quantized.linear_dynamic(x, packed, True))


def test_row_scales_keep_small_rows_as_exact_as_large_ones():
    torch.manual_seed(0)
    lin = nn.Linear(256, 128)
    # rows 100x apart in magnitude: one per-call scale leaves the small rows a few steps
    x = _outlier_inputs(40, 256) * torch.logspace(-2, 0, 40)[:, None]
    ref = lin(x).detach()
    rel = {}
    for scales in ("row", "tensor"):
        layer = quantize_linears(nn.Sequential(lin), act_scales=scales)[0]
        assert layer.per_row == (scales == "row")
        y = layer(x)
        rel[scales] = (y - ref).norm(dim=-1) / ref.norm(dim=-1)  # per row
    # every row, the smallest included; 7-bit activations (a CPU whose int8 kernel saturates
    # at 8 bits, e.g. AMD Zen 3) have twice the step
    assert rel["row"].max() < (0.05 if full_range_is_exact() else 0.1)
    assert rel["tensor"][:10].mean() > 5 * rel["row"][:10].mean()
    # the bias is added once, outside the kernel: a zero input gives exactly the bias
    row = quantize_linears(nn.Sequential(lin))[0]
    assert torch.allclose(row(torch.zeros(2, 256)), lin.bias.detach().expand(2, -1))
    assert row(x.view(4, 10, 256)).shape == (4, 10, 128)
    no_bias = quantize_linears(nn.Sequential(nn.Linear(256, 8, bias=False)))[0]
    assert no_bias.row_bias is None and no_bias(x).shape == (40, 8)
    # the moved bias is state: a state_dict round trip into a fresh int8 copy gives the same layer
    fresh = quantize_linears(nn.Sequential(nn.Linear(256, 128)))[0]
    fresh.load_state_dict(row.state_dict())
    assert "row_bias" in row.state_dict() and torch.equal(fresh(x), row(x))
    with pytest.raises(ValueError, match="act_scales"):
        quantize_linears(nn.Sequential(lin), act_scales="channel")
