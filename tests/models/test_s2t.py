"""S2TModel: config checks, shapes, padding, backends, KV cache, loss and gradients."""

import pytest
import torch

from speechkit.config import ConfigError, from_dict
from speechkit.models.s2t import S2TConfig, S2TModel

V, F = 23, 16


TINY = {
    "n_mels": F, "vocab_size": V, "d_model": 32, "n_heads": 4, "encoder_layers": 2,
    "encoder_ffn": 48, "cgmlp_units": 48, "cgmlp_kernel": 5, "merge_conv_kernel": 3,
    "decoder_layers": 2, "decoder_ffn": 48, "dropout": 0.0, "attention_dropout": 0.0,
    "max_target_positions": 32,
}  # fmt: skip


def tiny_cfg(**kw) -> S2TConfig:
    return S2TConfig(**{**TINY, **kw})


def tiny_model(seed=0, **kw) -> S2TModel:
    torch.manual_seed(seed)
    return S2TModel(tiny_cfg(**kw)).eval()


def make_batch(seed=0):
    """Two utterances of 41 and 27 frames; targets of 6 and 4 tokens (+ ignored padding)."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2, 41, F, generator=g)
    feat_lens = torch.tensor([41, 27])
    feats[1, 27:] = 0.0
    ys_in = torch.randint(1, V, (2, 6), generator=g)
    ys_out = torch.cat([ys_in[:, 1:], torch.full((2, 1), 3)], dim=1)
    ys_in[1, 4:] = 3  # padded with eos
    ys_out[1, 4:] = -100
    ctc_targets = torch.randint(1, V, (2, 5), generator=g)
    ctc_target_lens = torch.tensor([5, 3])
    ctc_targets[1, 3:] = -1
    return feats, feat_lens, ys_in, ys_out, ctc_targets, ctc_target_lens


# ---- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"ctc_weight": 1.0}, "ctc_weight"),
        ({"ctc_weight": -0.1}, "ctc_weight"),
        ({"dropout": 1.0}, "dropout"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"cgmlp_kernel": 4}, "odd"),
        ({"cgmlp_units": 47}, "even"),
        ({"n_mels": 4}, "n_mels"),
        ({"encoder_layers": 0}, "encoder_layers"),
        ({"vocab_size": -1}, "vocab_size"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny_cfg(**kw)


def test_config_defaults_and_yaml_round_trip():
    cfg = S2TConfig()  # vocab 0 is allowed until build
    assert cfg.vocab_size == 0
    with pytest.raises(ConfigError, match="vocab_size"):
        S2TModel(cfg)
    with pytest.raises(ConfigError, match="encoder_type"):
        from_dict(S2TConfig, {"encoder_type": "conformer"})


# ---- shapes and masks -------------------------------------------------------------------


@pytest.mark.parametrize("encoder_type", ["ebranchformer", "transformer"])
def test_shapes_and_padding_invariance(encoder_type):
    model = tiny_model(encoder_type=encoder_type)
    feats, feat_lens, ys_in, *_ = make_batch()
    enc, enc_lens = model.encode(feats, feat_lens)
    assert enc.shape == (2, 9, 32)
    assert enc_lens.tolist() == [9, 6]  # ((41-1)//2-1)//2, ((27-1)//2-1)//2
    logits = model.decode(ys_in, enc, enc_lens)
    assert logits.shape == (2, 6, V)
    assert model.ctc_log_probs(enc).shape == (2, 9, V)

    enc1, lens1 = model.encode(feats[1:, :27], feat_lens[1:])
    torch.testing.assert_close(enc[1:, :6], enc1, atol=1e-5, rtol=1e-5)
    logits1 = model.decode(ys_in[1:, :4], enc1, lens1)
    torch.testing.assert_close(logits[1:, :4], logits1, atol=1e-5, rtol=1e-5)


def test_sdpa_and_eager_agree():
    model = tiny_model(attention_backend="eager")
    batch = make_batch()
    with torch.no_grad():
        ref = model(*batch)
        model.set_attention_backend("sdpa")
        out = model(*batch)
    for key in ("loss", "loss_att", "loss_ctc"):
        torch.testing.assert_close(out[key], ref[key], atol=1e-5, rtol=1e-5)


@pytest.mark.interpreter
def test_triton_backend_builds_and_runs():
    model = tiny_model(attention_backend="triton")
    out = model(*make_batch())
    assert torch.isfinite(out["loss"])


# ---- incremental decoding ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
def test_cache_steps_match_teacher_forcing(backend):
    model = tiny_model(attention_backend=backend)
    feats, feat_lens, ys_in, *_ = make_batch()
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
        full = model.decode(ys_in, enc, enc_lens)
        cache = model.new_cache(enc, enc_lens)
        first = model.decode_step(ys_in[:, :2], cache)  # a prefix of 2, then one at a time
        steps = [first] + [model.decode_step(ys_in[:, i : i + 1], cache) for i in range(2, 6)]
    assert cache.length == 6
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_reorder_selects_and_expands_rows():
    model = tiny_model()
    feats, feat_lens, ys_in, *_ = make_batch()
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
        cache = model.new_cache(enc, enc_lens)
        model.decode_step(ys_in[:, :3], cache)
        index = torch.tensor([1, 1, 0])
        cache.reorder(index)
        step = model.decode_step(ys_in[index, 3:4], cache)
        full = model.decode(ys_in[index, :4], enc[index], enc_lens[index])
    torch.testing.assert_close(step[:, 0], full[:, 3], atol=1e-5, rtol=1e-5)


def test_beams_share_their_utterance_cross_kv():
    """Rows in equal runs per utterance keep one cross K/V per utterance, through beam-style
    reorders (within an utterance, then an utterance leaving), and decode like teacher forcing."""
    model = tiny_model()
    feats, feat_lens, ys_in, *_ = make_batch()
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
        cache = model.new_cache(enc, enc_lens)
        rows = torch.tensor([0, 0, 0, 1, 1, 1])  # 3 beams per utterance
        cache.reorder(rows)
        assert cache.group == 3 and cache.cross[0][0].shape[0] == 2
        hyps = ys_in[rows].clone()
        hyps[:, 1] = torch.arange(6)  # the beams differ from the second token on
        model.decode_step(hyps[:, :3], cache)
        cross_before = cache.cross[0][0]
        beams = torch.tensor([2, 0, 0, 4, 5, 3])  # each beam continues one of its utterance's
        cache.reorder(beams)
        assert cache.cross[0][0] is cross_before  # no copy of the encoder K/V
        step = model.decode_step(hyps[beams, 3:4], cache)
        full = model.decode(hyps[beams, :4], enc[rows], enc_lens[rows])
        torch.testing.assert_close(step[:, 0], full[:, 3], atol=1e-5, rtol=1e-5)

        cache.reorder(torch.tensor([4, 3, 3]))  # utterance 0 leaves the batch
        assert cache.group == 3 and cache.cross[0][0].shape[0] == 1
        kept = beams[torch.tensor([4, 3, 3])]
        step = model.decode_step(hyps[kept, 4:5], cache)
        full = model.decode(hyps[kept, :5], enc[[1, 1, 1]], enc_lens[[1, 1, 1]])
        torch.testing.assert_close(step[:, 0], full[:, 4], atol=1e-5, rtol=1e-5)

        uneven = model.new_cache(enc, enc_lens).reorder(torch.tensor([0, 0, 1]))
        assert uneven.group == 1 and uneven.cross[0][0].shape[0] == 3  # one per hypothesis
        torch.testing.assert_close(
            model.decode_step(ys_in[[0, 0, 1], :3], uneven), model.decode(ys_in[[0, 0, 1], :3],
            enc[[0, 0, 1]], enc_lens[[0, 0, 1]]), atol=1e-5, rtol=1e-5,
        )  # fmt: skip
        with pytest.raises(ValueError, match="cannot share"):
            model.decode_step(torch.zeros(3, 1, dtype=torch.long), model.new_cache(enc, enc_lens))


def test_decoder_length_limit_is_clear():
    model = tiny_model(max_target_positions=8)
    feats, feat_lens, *_ = make_batch()
    enc, enc_lens = model.encode(feats, feat_lens)
    with pytest.raises(ValueError, match="max_target_positions"):
        model.decode(torch.zeros(2, 9, dtype=torch.long), enc, enc_lens)


# ---- loss and training ------------------------------------------------------------------


def test_loss_terms_and_ignore_index():
    model = tiny_model(label_smoothing=0.0)
    batch = make_batch()
    out = model(*batch)
    assert set(out) == {"loss", "loss_att", "loss_ctc", "acc", "num_tokens"}
    assert out["num_tokens"].item() == 10
    w = model.cfg.ctc_weight
    torch.testing.assert_close(out["loss"], (1 - w) * out["loss_att"] + w * out["loss_ctc"])
    # loss_att is the plain per-token cross-entropy over the non-ignored targets
    feats, feat_lens, ys_in, ys_out, *_ = batch
    enc, enc_lens = model.encode(feats, feat_lens)
    logits = model.decode(ys_in, enc, enc_lens)
    keep = ys_out != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], ys_out[keep])
    torch.testing.assert_close(out["loss_att"], expected, atol=1e-5, rtol=1e-5)
    # changing an ignored target changes nothing
    ys_out2 = ys_out.clone()
    ys_in2 = ys_in.clone()
    ys_in2[1, 5] = 7
    out2 = model(feats, feat_lens, ys_in2, ys_out2, *batch[4:])
    torch.testing.assert_close(out2["loss"], out["loss"])


def test_ctc_weight_zero_skips_ctc():
    out = tiny_model(ctc_weight=0.0)(*make_batch())
    assert out["loss_ctc"].item() == 0.0
    torch.testing.assert_close(out["loss"], out["loss_att"])


@pytest.mark.parametrize("tie", [True, False])
def test_gradients_reach_every_parameter(tie):
    model = tiny_model(tie_embeddings=tie)
    model.train()
    model(*make_batch())["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


@pytest.mark.parametrize("encoder_type", ["ebranchformer", "transformer"])
def test_tiny_overfit_lowers_loss(encoder_type):
    model = tiny_model(encoder_type=encoder_type)
    model.train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model(*batch)
        assert torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.5 * losses[0]
    assert model(*batch)["acc"].item() > 0.5


AMP = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bf16"),
    pytest.param("cpu", torch.float16, id="cpu-fp16"),
    pytest.param("cuda", torch.bfloat16, id="cuda-bf16", marks=pytest.mark.cuda),
    pytest.param("cuda", torch.float16, id="cuda-fp16", marks=pytest.mark.cuda),
]


@pytest.mark.parametrize("device, dtype", AMP)
def test_mixed_precision_training_lowers_loss_with_fp32_weights(device, dtype):
    """Training steps as the trainer takes them under ``trainer.amp``: ``torch.autocast`` and,
    for float16 only, a GradScaler that skips the steps whose scaled gradients overflow and
    lowers its scale. Losses stay finite, the weights float32, and the loss falls."""
    model = tiny_model(encoder_type="transformer").to(device).train()
    batch = [t.to(device) for t in make_batch()]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler(device, enabled=dtype == torch.float16)
    losses, skipped = [], 0
    for _ in range(10):
        with torch.autocast(device, dtype=dtype):
            out = model(*batch)
        assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32
        opt.zero_grad()
        scaler.scale(out["loss"]).backward()
        scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        skipped += scaler.get_scale() < scale  # an overflow: the step was not taken
        losses.append(out["loss"].item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert skipped <= 4  # the scaler finds its range in a few steps, then trains
    assert losses[-1] < 0.8 * losses[0]


def test_zero_length_utterance_is_finite():
    model = tiny_model()
    feats, feat_lens, *rest = make_batch()
    feat_lens = torch.tensor([41, 5])  # second one is shorter than one output frame
    out = model(feats, feat_lens, *rest)
    assert torch.isfinite(out["loss"])


def test_shared_encoder_targets_match_duplicated_utterances():
    """Targets that share an utterance's encoder pass (target_utt) get the same decoder loss
    as if the utterance had been repeated once per target."""
    model = tiny_model(encoder_type="transformer")
    feats, feat_lens, ys_in, ys_out, ctc, ctc_lens = make_batch()
    target_utt = torch.tensor([0, 1, 0])
    ys_in3 = torch.cat([ys_in, ys_in[:1].flip(1)])
    ys_out3 = torch.cat([ys_out, ys_out[:1].flip(1)])
    with torch.no_grad():
        shared = model(feats, feat_lens, ys_in3, ys_out3, ctc, ctc_lens, target_utt)
        repeated = model(
            feats[target_utt], feat_lens[target_utt], ys_in3, ys_out3,
            ctc[target_utt], ctc_lens[target_utt],
        )  # fmt: skip
    torch.testing.assert_close(shared["loss_att"], repeated["loss_att"])
    torch.testing.assert_close(shared["acc"], repeated["acc"])
    assert shared["num_tokens"] == repeated["num_tokens"]


@pytest.mark.parametrize(
    "kw",
    [{"subsampling_norm": True}, {"subsampling_activation": "gelu"}, {"scale_input": False}],
)
def test_front_end_options_change_the_encoder_but_not_its_shapes(kw):
    feats, feat_lens, *_ = make_batch()
    base, other = tiny_model(seed=0), tiny_model(seed=0, **kw)
    with torch.no_grad():
        enc_a, lens_a = base.encode(feats, feat_lens)
        enc_b, lens_b = other.encode(feats, feat_lens)
    assert enc_a.shape == enc_b.shape and torch.equal(lens_a, lens_b)
    assert not torch.allclose(enc_a, enc_b)
