"""FFN channel-group gates (nn/feedforward.py, nn/gates.py): relaxed 0/1 group gates equal the
sliced inference computation, an off group's channels are never computed, and a layer gated per
group agrees across the gate forms (tuple, per-row bool patterns, relaxed floats)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from speechkit.nn.ebranchformer import EBranchformerLayer
from speechkit.nn.feedforward import FeedForward
from speechkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

D, FFN, G = 16, 24, 4  # 4 groups of 6 hidden channels


def _ffn():
    torch.manual_seed(0)
    return FeedForward(D, FFN, 0.0, "swish").eval()


@pytest.mark.parametrize("pattern", list(itertools.product([False, True], repeat=G)))
def test_relaxed_group_gates_equal_the_sliced_computation(pattern):
    ffn, x = _ffn(), torch.randn(3, 7, D)
    sliced = ffn(x, pattern)
    relaxed = ffn(x, torch.tensor([pattern] * 3, dtype=torch.float32))
    torch.testing.assert_close(relaxed, sliced, atol=1e-6, rtol=1e-5)
    if all(pattern):
        torch.testing.assert_close(sliced, ffn(x), atol=1e-6, rtol=1e-5)
    if not any(pattern):  # an FFN with every group off contributes nothing (and its bias too)
        assert not bool(sliced.any())


def test_off_groups_are_not_computed(monkeypatch):
    ffn, x = _ffn(), torch.randn(2, 5, D)
    shapes = []
    real = F.linear

    def linear(inp, weight, bias=None):
        shapes.append(tuple(weight.shape))
        return real(inp, weight, bias)

    monkeypatch.setattr(F, "linear", linear)
    ffn(x, (True, False, True, True))  # runs: groups [0, 1) and [2, 4)
    assert shapes == [(6, D), (D, 6), (12, D), (D, 12)]
    monkeypatch.undo()
    with FlopCounterMode(display=False) as counter:
        ffn(x, (False, True, False, False))
    # one group of 6 channels: two products of (10 rows) x D x 6, 2 FLOPs per multiply-add
    assert counter.get_total_flops() == 2 * (2 * 10 * D * (FFN // G))


@pytest.mark.parametrize("make", ["ebf", "enc"])
def test_layer_with_group_gates_agrees_across_gate_forms(make):
    torch.manual_seed(0)
    if make == "ebf":
        layer = EBranchformerLayer(D, 2, FFN, 20, 5, 3, 0.0, 0.0).eval()
    else:
        layer = TransformerEncoderLayer(D, 2, FFN, 0.0, 0.0).eval()
    layer.group_ffn_gates(G)
    names = layer.gate_names
    assert [n for n in names if n.startswith("ffn")] == [
        f"{f}.{g}" for f in layer.FFNS for g in range(G)
    ]
    x, lens = torch.randn(3, 9, D), torch.tensor([9, 7, 4])
    mask = torch.arange(9)[None] < lens[:, None]
    calls = []
    for f in layer.FFNS:
        getattr(layer, f).register_forward_hook(lambda *_, n=f: calls.append(n))
    g = torch.Generator().manual_seed(3)
    rows = torch.rand(3, len(names), generator=g) > 0.4
    rows[1] = False  # every module off: only the final norm (E-Branchformer) runs
    for f in layer.FFNS:  # row 0: the first FFN's groups all off -> that FFN is not called
        rows[0, [i for i, n in enumerate(names) if n.startswith(f + ".")]] = f != layer.FFNS[0]
    out = layer(x, mask, lens, rows)
    relaxed = layer(x, mask, lens, rows.float())
    torch.testing.assert_close(relaxed[mask], out[mask], atol=1e-5, rtol=1e-5)
    for b in range(3):
        calls.clear()
        alone = layer(x[b : b + 1, : lens[b]], mask[b : b + 1, : lens[b]], lens[b : b + 1],
                      tuple(rows[b].tolist()))  # fmt: skip
        torch.testing.assert_close(out[b, : lens[b]], alone[0], atol=1e-5, rtol=1e-5)
        on = {f for f in layer.FFNS if any(rows[b, i] for i, n in enumerate(names)
                                           if n.startswith(f + "."))}  # fmt: skip
        assert set(calls) == on
    with pytest.raises(ValueError, match="do not divide"):
        layer.group_ffn_gates(5)


def test_decoder_layer_group_gates_keep_cross_attention_at_gate_one():
    torch.manual_seed(0)
    layer = TransformerDecoderLayer(D, 2, FFN, 0.0, 0.0).eval()
    layer.group_ffn_gates(G)
    assert layer.gate_names == ("self_attn", "cross_attn", *(f"ffn.{g}" for g in range(G)))
    x, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    cross, cmask = layer.cross_kv(memory), torch.ones(2, 1, 1, 7, dtype=torch.bool)
    pattern = (True, True, False, True, True, False)
    hard, _ = layer(x, None, cross, cmask, None, pattern)
    relaxed, _ = layer(x, None, cross, cmask, None, torch.tensor([pattern] * 2).float())
    torch.testing.assert_close(relaxed, hard, atol=1e-5, rtol=1e-5)
