"""GatedS2TModel: an s2t model's weights load into it, relaxed gates train the predictor
toward a FLOP budget, and hard gates decode like the plain model when every gate is on."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import ConfigError, to_dict
from speechkit.decode import DecodeOptions, SpecialIds, greedy_search
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.s2t import S2TConfig, S2TModel

BASE = dict(
    n_mels=20, vocab_size=30, d_model=16, n_heads=2, encoder_layers=2, encoder_ffn=24,
    cgmlp_units=20, cgmlp_kernel=5, merge_conv_kernel=3, decoder_layers=2, decoder_ffn=24,
    dropout=0.0, attention_dropout=0.0, max_target_positions=32,
)  # fmt: skip


def _models(**gates):
    torch.manual_seed(0)
    base = S2TModel(S2TConfig(**BASE)).eval()
    cfg = GatedS2TConfig(**to_dict(base.cfg), **gates)
    gated = GatedS2TModel(cfg)
    missing, unexpected = gated.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("predictor.") for k in missing)
    return base, gated.eval()


def _batch(b=3):
    g = torch.Generator().manual_seed(1)
    ys = torch.randint(8, 30, (b, 6), generator=g)
    return {
        "feats": torch.randn(b, 60, 20, generator=g),
        "feat_lens": torch.tensor([60, 48, 33][:b]),
        "ys_in": ys,
        "ys_out": torch.roll(ys, -1, 1),
        "ctc_targets": ys[:, :3],
        "ctc_target_lens": torch.full((b,), 3),
    }


def _inputs(b=3, budget=0.5):
    return {
        "budget": torch.full((b,), budget),
        "contexts": {"speaker": torch.randn(b, 4)},
        "known": {"speaker": torch.tensor([True, False, True][:b])},
        "language": torch.eye(2)[torch.tensor([0, 1, 0][:b])],
    }


def test_relaxed_gates_give_a_flop_fraction_and_train_the_predictor():
    _, gated = _models(gate_contexts=["speaker", "language"], context_dims={"speaker": 4},
                       languages=["eng", "deu"])  # fmt: skip
    gated.train()
    out = gated(**_batch(), gate_inputs=_inputs())
    assert out["kept"].shape == (3,) and bool(((out["kept"] >= 0) & (out["kept"] <= 1)).all())
    assert out["enc_gates"].shape == (gated.n_enc,) and out["dec_gates"].shape == (gated.n_dec,)
    budget = 0.3
    penalty = (out["kept"] - budget).abs() + (out["kept"] - budget) ** 2
    (out["loss"] + penalty.mean()).backward()
    grads = [p.grad for p in gated.predictor.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_decoder_rows_weigh_the_decoder_as_a_beam_search_runs_it():
    _, gated = _models()
    T, L = torch.tensor([15]), torch.tensor([6])
    enc_off = torch.zeros(1, gated.n_enc)
    dec_on = torch.ones(1, gated.n_dec)
    one = float(gated.kept_fraction(T, L, enc_off, dec_on))
    gated.cfg.gate_decoder_rows = 5
    five = float(gated.kept_fraction(T, L, enc_off, dec_on))
    assert 0.0 < one < five < 1.0  # the decoder's share of the compute grows with the beam
    assert float(gated.kept_fraction(T, L, 1 - enc_off, dec_on)) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="gate_decoder_rows"):
        GatedS2TConfig(**BASE, gate_decoder_rows=0)


def test_split_budget_penalises_the_decoders_own_kept_fraction():
    from speechkit.tasks.prune import sparsity_objective

    _, gated = _models()
    gated.train()
    out = gated(**_batch(), gate_inputs=_inputs())
    assert out["kept_dec"].shape == (3,) and bool(
        ((out["kept_dec"] >= 0) & (out["kept_dec"] <= 1)).all()
    )
    fake = lambda kept, kept_dec: {"loss": torch.tensor(1.0), "kept": torch.tensor([kept]),
                                   "kept_dec": torch.tensor([kept_dec])}  # noqa: E731  # fmt: skip
    # the total meets the budget, the decoder keeps everything: only the split penalises it
    one = sparsity_objective(fake(0.5, 1.0), 0.5, alpha=2.0)
    split = sparsity_objective(fake(0.5, 1.0), 0.5, alpha=2.0, split=True)
    assert float(one["loss"]) == pytest.approx(1.0)
    assert float(split["loss"]) == pytest.approx(1.0 + 2.0 * (0.5 + 0.25))
    assert float(split["kept_dec"]) == pytest.approx(1.0) and float(one["kept_dec"]) == 1.0


def test_always_on_modules_are_never_gated_nor_counted_in_the_budget():
    _, gated = _models(gate_mode="static", gate_always_on=["cross_attn"], gate_budget_gain=4.0)
    cross = torch.tensor([n.endswith("cross_attn") for n in gated.dec_names])
    assert int(cross.sum()) == 2 and not bool(gated.enc_fixed.any())
    enc, dec = gated.static_gates(0.0)  # budget 0: every gate the predictor decides is off
    assert bool(dec[cross].all()) and not bool(dec[~cross].any()) and not bool(enc.any())
    gated.train()
    out = gated(**_batch(), gate_inputs=_inputs(budget=0.0) | {"contexts": {}, "known": {}})
    # sampled gates: the fixed ones are on in every row, and cost nothing in kept
    assert float(out["dec_gates"][cross].min()) == 1.0
    T, L = torch.tensor([15]), torch.tensor([6])
    off_but_fixed = cross.float()[None]
    assert float(gated.kept_fraction(T, L, torch.zeros(1, gated.n_enc), off_but_fixed)) == 0.0
    with pytest.raises(ConfigError, match="gate_always_on"):
        _models(gate_always_on=["crossattn"])
    every = ["ffn1", "attn", "cgmlp", "ffn2", "self_attn", "cross_attn", "ffn"]
    with pytest.raises(ConfigError, match="no module gated"):
        _models(gate_always_on=every)


def test_all_gates_on_decode_exactly_like_the_plain_model():
    base, gated = _models(gate_mode="dynamic")
    b = _batch()
    enc_ref, lens_ref = base.encode(b["feats"], b["feat_lens"])
    enc, lens, enc_g, shared = gated.encode_gated(b["feats"], b["feat_lens"], _inputs())
    assert bool(enc_g.all())  # a fresh predictor keeps everything
    torch.testing.assert_close(enc, enc_ref)
    dec_g = gated.decoder_gates(shared)
    ids = SpecialIds(eos=3)
    opts = DecodeOptions(beam_size=1, max_len=8)
    prefix = torch.full((3, 1), 2)
    ref = greedy_search(base, enc_ref, lens_ref, prefix, opts, ids)
    got = greedy_search(gated.gated_decoder(tuple(dec_g[0].tolist())), enc, lens, prefix, opts, ids)
    assert [h[0].tokens for h in got] == [h[0].tokens for h in ref]


def test_off_gates_skip_compute_and_static_gates_ignore_the_utterance():
    _, gated = _models(gate_mode="static")
    with torch.no_grad():  # push every encoder gate off at a budget of 0
        bias = gated.predictor.enc_mlp[2].bias.view(-1, 2)
        bias[:, 0] = 10.0
    b = _batch()
    enc, _, enc_g, shared = gated.encode_gated(b["feats"], b["feat_lens"], _inputs(budget=0.0))
    assert not bool(enc_g.any())
    x, _ = gated.encoder.front_end(b["feats"], b["feat_lens"])
    for layer in gated.encoder.layers:  # only each layer's (ungated) final norm ran
        x = layer.final_norm(x)
    torch.testing.assert_close(enc, gated.encoder.norm(x))
    b2 = _batch(2)
    _, _, enc_g2, shared2 = gated.encode_gated(b2["feats"], b2["feat_lens"], _inputs(2, 0.0))
    assert torch.equal(enc_g2[0], enc_g[0]) and torch.equal(shared2[0], shared[0])


def test_static_export_removes_off_modules_and_computes_the_same():
    _, gated = _models(gate_mode="static")
    with (
        torch.no_grad()
    ):  # turn some gates off: encoder 0.attn, 1.ffn2; decoder 0.cross_attn, 1.ffn
        enc_bias = gated.predictor.enc_mlp[2].bias.view(-1, 2)
        dec_bias = gated.predictor.dec_mlp[2].bias.view(-1, 2)
        for i in (1, 7):
            enc_bias[i, 0] = 10.0
        for i in (1, 5):
            dec_bias[i, 0] = 10.0
    small = gated.export_static(0.5)
    assert small.cfg.pruned_modules == sorted(
        ["encoder.0.attn", "encoder.1.ffn2", "decoder.0.cross_attn", "decoder.1.ffn"]
    )
    assert small.encoder.layers[0].attn is None and small.decoder.layers[1].ffn is None
    assert sum(p.numel() for p in small.parameters()) < sum(
        p.numel() for n, p in gated.named_parameters() if not n.startswith("predictor.")
    )
    b = _batch()
    enc, lens, _, shared = gated.encode_gated(b["feats"], b["feat_lens"], _inputs())
    enc_small, _ = small.encode(b["feats"], b["feat_lens"])
    torch.testing.assert_close(enc_small, enc)
    pattern = tuple(gated.decoder_gates(shared)[0].tolist())
    ids, opts, prefix = (
        SpecialIds(eos=3),
        DecodeOptions(beam_size=1, max_len=8),
        torch.full((3, 1), 2),
    )
    got = greedy_search(small, enc_small, lens, prefix, opts, ids)
    ref = greedy_search(gated.gated_decoder(pattern), enc, lens, prefix, opts, ids)
    assert [h[0].tokens for h in got] == [h[0].tokens for h in ref]
    _, dynamic = _models(gate_mode="dynamic")
    with pytest.raises(ValueError, match="gate_mode: static"):
        dynamic.export_static(0.5)


def test_ffn_group_gates_expand_the_gate_names_and_are_checked():
    _, gated = _models(gate_ffn_groups=3)
    assert gated.enc_names[:6] == ["0.ffn1.0", "0.ffn1.1", "0.ffn1.2", "0.attn", "0.cgmlp",
                                   "0.ffn2.0"]  # fmt: skip
    assert gated.n_enc == 2 * 8 and gated.n_dec == 2 * 5
    assert gated.predictor.n_enc == gated.n_enc and gated.predictor.n_dec == gated.n_dec
    with pytest.raises(ConfigError, match="gate_ffn_groups"):
        GatedS2TConfig(**BASE, gate_ffn_groups=5)  # 24 channels


def test_predictor_with_ffn_groups_trains_toward_a_budget():
    _, gated = _models(gate_ffn_groups=4, gate_mode="static")
    gated.train()
    b = _batch()
    opt = torch.optim.Adam(gated.predictor.parameters(), lr=0.05)
    kept = []
    for _ in range(25):
        torch.manual_seed(len(kept))
        out = gated(**b, gate_inputs=_inputs(budget=0.3))
        gap = out["kept"] - 0.3
        loss = (gap.abs() + gap**2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        kept.append(float(out["kept"].detach().mean()))
    assert kept[0] > 0.8 and abs(sum(kept[-5:]) / 5 - 0.3) < 0.15, kept
    gated.eval()  # the argmax gates turn some FFN groups off, not only whole modules
    enc, dec = gated.static_gates(0.3)
    groups = [on for n, on in zip(gated.enc_names + gated.dec_names, [*enc, *dec]) if "ffn" in n]
    assert any(groups) and not all(groups)


def _static_with_groups_off():
    """A static model with 2 FFN groups: encoder 0.ffn1 group 1 off, 1.ffn2 both groups off,
    1.attn off; decoder 0.ffn group 0 off."""
    _, gated = _models(gate_mode="static", gate_ffn_groups=2)
    with torch.no_grad():
        enc_bias = gated.predictor.enc_mlp[2].bias.view(-1, 2)
        dec_bias = gated.predictor.dec_mlp[2].bias.view(-1, 2)
        for name in ("0.ffn1.1", "1.ffn2.0", "1.ffn2.1", "1.attn"):
            enc_bias[gated.enc_names.index(name), 0] = 10.0
        dec_bias[gated.dec_names.index("0.ffn.0"), 0] = 10.0
    return gated


def test_ffn_group_gates_at_inference_equal_relaxed_gates_and_export_narrower_ffns():
    gated = _static_with_groups_off()
    b = _batch()
    enc, lens, enc_g, shared = gated.encode_gated(b["feats"], b["feat_lens"], _inputs())
    assert int((~enc_g[0]).sum()) == 4
    x, x_lens = gated.encoder.front_end(b["feats"], b["feat_lens"])
    relaxed, _ = gated.encoder.run_layers(x, x_lens, gated._per_layer(enc_g.float(), 2))
    torch.testing.assert_close(relaxed, enc, atol=1e-5, rtol=1e-5)
    small = gated.export_static(0.5)
    assert small.cfg.pruned_modules == ["encoder.1.attn", "encoder.1.ffn2"]
    assert small.cfg.ffn_widths == {"decoder.0.ffn": 12, "encoder.0.ffn1": 12}
    assert small.encoder.layers[0].ffn1.net[0].out_features == 12
    enc_small, _ = small.encode(b["feats"], b["feat_lens"])
    torch.testing.assert_close(enc_small, enc, atol=1e-5, rtol=1e-5)
    pattern = tuple(gated.decoder_gates(shared)[0].tolist())
    ids, opts, prefix = (
        SpecialIds(eos=3),
        DecodeOptions(beam_size=1, max_len=8),
        torch.full((3, 1), 2),
    )
    got = greedy_search(small, enc_small, lens, prefix, opts, ids)
    ref = greedy_search(gated.gated_decoder(pattern), enc, lens, prefix, opts, ids)
    assert [h[0].tokens for h in got] == [h[0].tokens for h in ref]
    reloaded = S2TModel(S2TConfig(**to_dict(small.cfg)))  # the config alone rebuilds its shapes
    reloaded.load_state_dict(small.state_dict())
