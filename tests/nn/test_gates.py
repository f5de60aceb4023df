"""Module gates on the encoder and decoder layers (nn/gates.py): an off module is not run, and
relaxed 0/1 gates, per-batch tuples, per-row patterns and dropped modules agree."""

from __future__ import annotations

import itertools

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.nn.ebranchformer import EBranchformerLayer
from speechkit.nn.gates import GatePredictor, check_budget, decoding_budget, sample_gates
from speechkit.nn.masks import causal_mask
from speechkit.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer

D = 16


def _ebf(drop=()):
    torch.manual_seed(0)
    return EBranchformerLayer(D, 2, 24, 20, 5, 3, 0.0, 0.0, drop=drop).eval()


def _enc(drop=()):
    torch.manual_seed(0)
    return TransformerEncoderLayer(D, 2, 24, 0.0, 0.0, drop=drop).eval()


def _calls(layer) -> dict[str, int]:
    counts = {n: 0 for n in layer.GATED}
    for name in layer.GATED:
        module = getattr(layer, name)
        if module is not None:
            module.register_forward_hook(lambda *_, n=name: counts.__setitem__(n, counts[n] + 1))
    return counts


def _copy(full, pruned):
    """``pruned`` with the weights of ``full`` for every module it kept."""
    state = full.state_dict()
    pruned.load_state_dict({k: state[k] for k in pruned.state_dict()})
    return pruned


@pytest.mark.parametrize("make", [_ebf, _enc])
def test_encoder_layer_gate_forms_agree_and_off_modules_do_not_run(make):
    layer = make()
    k = len(layer.GATED)
    x = torch.randn(3, 9, D)
    lens = torch.tensor([9, 7, 4])
    mask = torch.arange(9)[None] < lens[:, None]
    for pattern in itertools.product([False, True], repeat=k):
        ref_layer = make()
        counts = _calls(ref_layer)
        hard = ref_layer(x, mask, lens, pattern)
        assert all(counts[n] == int(on) for n, on in zip(layer.GATED, pattern))
        relaxed = layer(x, mask, lens, torch.tensor([pattern] * 3, dtype=torch.float32))
        torch.testing.assert_close(relaxed, hard, atol=1e-5, rtol=1e-5)
        dropped = _copy(layer, make(drop=[n for n, on in zip(layer.GATED, pattern) if not on]))
        torch.testing.assert_close(dropped(x, mask, lens)[mask], hard[mask], atol=1e-5, rtol=1e-5)
    # Row patterns: each row equals that row run alone with its own tuple.
    rows = torch.tensor([[True] * k, [False] * k, [i % 2 == 0 for i in range(k)]])
    out = layer(x, mask, lens, rows)
    for b in range(3):
        alone = layer(x[b : b + 1, : lens[b]], mask[b : b + 1, : lens[b]], lens[b : b + 1],
                      tuple(rows[b].tolist()))  # fmt: skip
        torch.testing.assert_close(out[b, : lens[b]], alone[0], atol=1e-5, rtol=1e-5)


def test_decoder_layer_gates_skip_modules_and_their_cache():
    torch.manual_seed(0)
    layer = TransformerDecoderLayer(D, 2, 24, 0.0, 0.0).eval()
    counts = _calls(layer)
    x, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    cross, cmask = layer.cross_kv(memory), torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask = causal_mask(5, 0)
    counts.update({n: 0 for n in counts})
    out, kv = layer(x, mask, None, cmask, None, (False, False, True))
    assert kv is None and counts == {"self_attn": 0, "cross_attn": 0, "ffn": 1}
    relaxed, _ = layer(x, mask, cross, cmask, None, torch.tensor([[0.0, 0.0, 1.0]] * 2))
    torch.testing.assert_close(relaxed, out)
    torch.manual_seed(0)
    dropped = TransformerDecoderLayer(D, 2, 24, 0.0, 0.0, drop=["self_attn", "cross_attn"])
    dropped = _copy(layer, dropped.eval())
    assert dropped.cross_kv(memory) is None
    torch.testing.assert_close(dropped(x, mask, None, cmask, None)[0], out)
    with pytest.raises(ValueError, match="group rows"):
        layer(x, mask, cross, cmask, None, torch.ones(2, 3, dtype=torch.bool))


def test_predictor_starts_with_every_gate_on_and_uses_unknown_context():
    pred = GatePredictor(D, {"speaker": 4}, n_languages=3, n_enc=8, n_dec=6)
    pooled, budget = torch.randn(2, D), torch.tensor([0.5, 0.5])
    ctx, known = {"speaker": torch.randn(2, 4)}, {"speaker": torch.tensor([True, False])}
    shared = pred.features(pooled, ctx, known, budget)
    assert shared.shape == (2, pred.shared_dim)
    torch.testing.assert_close(shared[1, D : D + 4], pred.unknown["speaker"].detach())
    enc = pred.encoder_logits(shared)
    dec = pred.decoder_logits(shared, torch.eye(3)[:2])
    assert enc.shape == (2, 8, 2) and dec.shape == (2, 6, 2)
    assert bool((enc.argmax(-1) == 1).all()) and bool((dec.argmax(-1) == 1).all())
    gates = sample_gates(enc, tau=1.0)
    assert set(gates.unique().tolist()) <= {0.0, 1.0}
    gates.sum().backward()
    assert pred.enc_mlp[2].weight.grad is not None  # straight-through gradient reaches it
    static = GatePredictor(D, {}, 0, 4, 3, static=True)
    a = static.features(torch.randn(2, D), {}, {}, budget)
    assert torch.equal(a[0], a[1])  # static: no utterance input


def test_input_norm_puts_contexts_of_any_scale_on_one_footing():
    """Two event vectors that differ by under 1 % in cosine around a large shared component
    (the tagger's raw embedding) become distinguishable inputs; the budget column is untouched
    and a checkpoint without the switch sees its raw inputs."""
    shared_part = torch.full((8,), 50.0)
    ev = torch.stack([shared_part + torch.randn(8) * 0.3, shared_part + torch.randn(8) * 0.3])
    assert torch.nn.functional.cosine_similarity(ev[0], ev[1], dim=0) > 0.99
    pooled, budget = torch.randn(2, D) * 10, torch.tensor([0.4, 0.6])
    known = {"event": torch.tensor([True, True])}
    normed = GatePredictor(D, {"event": 8}, 0, 4, 3, input_norm=True)
    x = normed.features(pooled, {"event": ev}, known, budget)
    for part in (x[:, :D], x[:, D : D + 8]):  # zero mean, unit variance per row
        torch.testing.assert_close(part.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(part.var(-1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    assert torch.nn.functional.cosine_similarity(x[0, D : D + 8], x[1, D : D + 8], dim=0) < 0.9
    torch.testing.assert_close(x[:, -1], budget)
    raw = GatePredictor(D, {"event": 8}, 0, 4, 3).features(pooled, {"event": ev}, known, budget)
    torch.testing.assert_close(raw[:, D : D + 8], ev)
    assert not list(
        normed.state_dict().keys() - GatePredictor(D, {"event": 8}, 0, 4, 3).state_dict().keys()
    )


def test_budget_prior_turns_gates_off_at_low_budgets_from_the_start():
    pred = GatePredictor(D, {}, 0, n_enc=8, n_dec=6, budget_gain=4.0)
    pooled = torch.randn(3, D)
    shared = pred.features(pooled, {}, {}, torch.tensor([0.1, 0.5, 0.95]))
    keep = torch.cat([pred.encoder_logits(shared), pred.decoder_logits(shared, None)], 1)
    keep = keep.softmax(-1)[..., 1].mean(1)  # mean keep probability per row
    assert keep[0] < 0.5 < keep[1] < keep[2]
    plain = GatePredictor(D, {}, 0, n_enc=8, n_dec=6)
    assert plain.budget_gain is None and "budget_gain" not in dict(plain.named_parameters())


def test_one_budget_rule_for_every_command_and_config():
    """check_budget is the range rule that decode, transcribe, the benchmarks and the prune
    configs call; decoding_budget the rule of --budget for any model."""
    assert check_budget(0) == 0.0 and isinstance(check_budget(1), float)
    assert check_budget(0.5) == 0.5
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"^--budget must lie in \[0, 1\] .* got "):
            check_budget(bad)
    with pytest.raises(ConfigError, match=r"^prune\.valid_budget must lie in \[0, 1\]"):
        check_budget(2.0, "prune.valid_budget")
    assert decoding_budget(None, "m", gated=False, dynamic=False) is None
    with pytest.raises(ConfigError, match="m has no gates"):
        decoding_budget(0.5, "m", gated=False, dynamic=False)
    with pytest.raises(ConfigError, match="m is a gated model: give --budget"):
        decoding_budget(None, "m", gated=True, dynamic=True)
    assert decoding_budget(None, "m", gated=True, dynamic=False) == 1.0  # gate_mode none
    assert decoding_budget(0.3, "m", gated=True, dynamic=True) == 0.3
    with pytest.raises(ConfigError, match="--budget must lie in"):
        decoding_budget(1.5, "m", gated=True, dynamic=False)
