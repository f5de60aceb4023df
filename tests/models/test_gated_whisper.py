"""models/gated_whisper.py: decoder gates on a Whisper model. Off modules are not computed,
hard relaxed gates compute what the skipped model computes, incremental decoding with a gate
pattern matches teacher forcing, the FLOP weights match torch's counter, and the predictor
learns from the sparsity objective."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from speechkit.config import ConfigError
from speechkit.models.gated_whisper import GatedWhisperConfig, GatedWhisperModel
from speechkit.models.whisper import WhisperModel
from speechkit.tasks.prune import sparsity_objective


def _cfg(**kw) -> GatedWhisperConfig:
    base = dict(n_mels=8, n_audio_ctx=40, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
                n_vocab=37, n_text_ctx=24, n_text_state=16, n_text_head=2, n_text_layer=2)  # fmt: skip
    return GatedWhisperConfig(**{**base, **kw})


def _inputs(batch: int = 3, frames: int = 60, tokens: int = 7):
    torch.manual_seed(1)
    feats = torch.randn(batch, frames, 8)
    lens = torch.tensor([frames, frames - 10, frames - 23][:batch])
    ys_in = torch.randint(0, 37, (batch, tokens))
    return feats, lens, ys_in


def _model(**kw) -> GatedWhisperModel:
    torch.manual_seed(0)
    return GatedWhisperModel(_cfg(**kw)).eval()


def test_config_rules():
    with pytest.raises(ConfigError, match="gate_tau"):
        _cfg(gate_tau=0.0)
    with pytest.raises(ConfigError, match="gate_budget_gain"):
        _cfg(gate_budget_gain=-1.0)


def test_all_gates_on_is_the_plain_whisper_model():
    model = _model()
    plain = WhisperModel(_cfg(gate_mode="none")).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith("predictor.")})  # fmt: skip
    feats, lens, ys = _inputs()
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lens)
        gated = model.gated_decoder((True,) * model.n_dec)
        ours = gated.decode_step(ys, gated.new_cache(enc, enc_lens))
        ref = plain.decode(ys, enc, enc_lens)
    torch.testing.assert_close(ours, ref)


def test_off_modules_are_not_run_and_hard_float_gates_compute_the_same():
    model = _model()
    feats, lens, ys = _inputs()
    # layer 0: FFN off; layer 1: cross-attention off.
    pattern = (True, True, False, True, False, True)
    calls = []
    for i, layer in enumerate(model.decoder.layers):
        layer.ffn.register_forward_hook(lambda *_, i=i: calls.append((i, "ffn")))
        for name in ("self_attn", "cross_attn"):  # (attention runs through .attend)
            attn = getattr(layer, name)
            attn.attend = lambda *a, f=attn.attend, n=name, i=i, **k: (
                calls.append((i, n)) or f(*a, **k)
            )
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lens)
        gated = model.gated_decoder(pattern)
        cache = gated.new_cache(enc, enc_lens)
        assert cache.cross[1] is None and cache.cross[0] is not None  # no cross K/V computed
        skipped = gated.decode_step(ys, cache)
    assert (0, "ffn") not in calls and (1, "cross_attn") not in calls
    assert (0, "self_attn") in calls and (1, "ffn") in calls
    # The relaxed (float) path of training, with hard 0/1 gates, runs every module and scales
    # it by its gate: the same function.
    float_gates = torch.tensor(pattern, dtype=torch.float32).expand(3, -1)
    with torch.no_grad():
        cache = model.decoder.new_cache(enc, enc_lens, model._per_layer(float_gates))
        relaxed = model.decoder(ys, cache)
    torch.testing.assert_close(skipped, relaxed, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pattern", [(True, False, True, False, True, False),
                                     (False, True, True, False, True, True)])  # fmt: skip
def test_incremental_decoding_with_a_pattern_matches_teacher_forcing(pattern):
    """Step by step (KV cache; a layer without self-attention keeps none) equals one
    teacher-forced pass, also when no layer keeps self-attention K/V."""
    model = _model()
    feats, lens, ys = _inputs()
    gated = model.gated_decoder(pattern)
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lens)
        full = gated.decode_step(ys, gated.new_cache(enc, enc_lens))
        cache = gated.new_cache(enc, enc_lens)
        steps = [gated.decode_step(ys[:, i : i + 1], cache) for i in range(ys.shape[1])]
    assert cache.length == ys.shape[1]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_module_flops_match_the_flop_counter():
    model = _model()
    model.set_attention_backend("eager")  # FlopCounterMode does not count CPU fused sdpa
    feats, lens, ys = _inputs(batch=1, frames=50, tokens=9)
    pattern = (True, False, True, True, True, False)
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lens)
        gated = model.gated_decoder(pattern)
        with FlopCounterMode(display=False) as counter:
            gated.decode_step(ys, gated.new_cache(enc, enc_lens))
    flops = model.module_flops(enc_lens, torch.tensor([ys.shape[1]]))[0]
    kept = float((flops * torch.tensor(pattern, dtype=flops.dtype)).sum())
    out_layer = 2 * ys.shape[1] * 16 * 37
    assert counter.get_total_flops() == pytest.approx(kept + out_layer, rel=0.02)


def test_predictor_learns_the_budget_from_the_sparsity_objective():
    """With only the sparsity penalty to follow at budget 0.3, training the predictor drives
    the FLOP-weighted kept fraction from ~1 (every gate starts on) toward 0.3."""
    model = _model(gate_tau=0.5)
    model.train()
    feats, lens, ys = _inputs()
    ys_out = torch.randint(0, 37, ys.shape)
    opt = torch.optim.Adam(model.predictor.parameters(), lr=0.01)
    budget = torch.full((3,), 0.3)
    kept = []
    for _ in range(80):
        out = model(feats, lens, ys, ys_out, gate_inputs={"budget": budget})
        out = sparsity_objective(out, 0.3, alpha=4.0)
        opt.zero_grad()
        (out["loss"] - out["loss_task"]).backward()  # the penalty alone
        opt.step()
        kept.append(float(out["kept"]))
    assert kept[0] > 0.9
    assert abs(sum(kept[-20:]) / 20 - 0.3) < 0.1, kept[-20:]
    model.eval()
    model.budget = 0.3
    with torch.no_grad():
        gates = model.decoder_gates(*model.encode(feats, lens))
    assert gates.dtype == torch.bool and gates.shape == (3, 6) and not gates.all()


def test_static_gates_are_the_same_for_every_utterance():
    model = _model(gate_mode="static")
    feats, lens, _ = _inputs()
    with torch.no_grad():
        for p in model.predictor.parameters():
            p.add_(torch.randn_like(p))  # (any weights: the input has no utterance part)
        model.budget = 0.5
        gates = model.decoder_gates(*model.encode(feats, lens))
    assert (gates == gates[:1]).all()


def test_gate_mode_none_has_no_predictor_and_all_gates_on():
    model = _model(gate_mode="none")
    feats, lens, ys = _inputs()
    assert model.predictor is None
    with torch.no_grad():
        gates = model.decoder_gates(*model.encode(feats, lens))
        out = model(feats, lens, ys, ys)
    assert gates.all() and "kept" not in out
