"""WhisperModel: lengths, padding independence, KV cache, loss, decoding API, registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechkit.config import ConfigError
from speechkit.decode import DecodeOptions, SpecialIds, beam_search, greedy_search
from speechkit.models import MODELS, build_model
from speechkit.models.s2t import S2TConfig
from speechkit.models.whisper import WhisperConfig, WhisperModel, whisper_sinusoids

V, EOT, SOT = 40, 30, 31


def tiny_cfg(**kw) -> WhisperConfig:
    base = dict(n_mels=8, n_audio_ctx=25, n_audio_state=16, n_audio_head=2, n_audio_layer=2,
                n_vocab=V, n_text_ctx=16, n_text_state=16, n_text_head=4, n_text_layer=2)  # fmt: skip
    return WhisperConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return WhisperModel(tiny_cfg()).eval()


def test_config_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="n_text_state"):
        tiny_cfg(n_text_state=32)
    with pytest.raises(ConfigError, match="divisible by model.n_audio_head"):
        tiny_cfg(n_audio_head=3)
    with pytest.raises(ConfigError, match="n_vocab must be > 0"):
        tiny_cfg(n_vocab=0)
    assert not tiny_cfg(n_vocab=51864).multilingual and tiny_cfg(n_vocab=51865).multilingual


def test_sinusoids_layout():
    table = whisper_sinusoids(5, 8)
    assert table.shape == (5, 8)
    torch.testing.assert_close(table[:, :4], torch.sin(torch.arange(5.0)[:, None] * table.new_tensor(
        [10000 ** (-k / 3) for k in range(4)])))  # fmt: skip
    torch.testing.assert_close(table[0, 4:], torch.ones(4))


def test_encode_lengths_and_padding_independence(model):
    torch.manual_seed(1)
    feats = torch.randn(3, 50, 8)
    lens = torch.tensor([50, 37, 8])
    enc, enc_lens = model.encode(feats, lens)
    assert enc.shape == (3, 25, 16) and enc_lens.tolist() == [25, 19, 4]
    for b in range(3):  # each row alone, unpadded, computes the same frames
        alone, n = model.encode(feats[b : b + 1, : lens[b]], lens[b : b + 1])
        torch.testing.assert_close(enc[b, : int(n)], alone[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="exceeds 50 frames"):
        model.encode(torch.randn(1, 51, 8), torch.tensor([51]))


def test_cache_steps_and_reorder_match_teacher_forcing(model):
    torch.manual_seed(2)
    enc, enc_lens = model.encode(torch.randn(2, 30, 8), torch.tensor([30, 21]))
    ys = torch.randint(0, V, (2, 6))
    full = model.decode(ys, enc, enc_lens)
    cache = model.new_cache(enc, enc_lens)
    steps = [model.decode_step(ys[:, :3], cache)]
    cache.reorder(torch.tensor([1, 0, 1]))  # swap rows and duplicate one
    swapped = ys[[1, 0, 1]]
    steps_r = [model.decode_step(swapped[:, i : i + 1], cache) for i in range(3, 6)]
    torch.testing.assert_close(steps[0], full[:, :3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(steps_r, 1), full[[1, 0, 1], 3:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="n_text_ctx"):
        model.decode(torch.zeros(1, 17, dtype=torch.long), enc[:1], enc_lens[:1])


def test_last_only_and_output_threads_keep_the_logits(model):
    torch.manual_seed(4)
    enc, enc_lens = model.encode(torch.randn(2, 30, 8), torch.tensor([30, 21]))
    ys = torch.randint(0, V, (2, 5))
    full = model.decode(ys, enc, enc_lens)
    cache = model.new_cache(enc, enc_lens)
    last = model.decode_step(ys[:, :3], cache, last_only=True)
    assert last.shape == (2, 1, V)
    torch.testing.assert_close(last, full[:, 2:3], atol=1e-5, rtol=1e-5)
    threads = torch.get_num_threads()
    model.decoder.output_threads = threads + 1
    try:
        step = model.decode_step(ys[:, 3:4], cache)  # output projection on one more thread
    finally:
        model.decoder.output_threads = None
    assert torch.get_num_threads() == threads  # restored after the projection
    torch.testing.assert_close(step, full[:, 3:4], atol=1e-5, rtol=1e-5)


def test_step_kernels_give_the_same_steps(model):
    """A search step's logits with the decoder's weights read from float16 copies ("half") or
    through MKL's packed table ("packed") equal the plain products' for weights that are float16
    values; the copies stay out of the saved state and "plain" puts nn.Linear layers back. A
    decoder whose weights are not float16 values gets "plain" when "half" is asked for."""
    import copy

    from torch import nn

    from speechkit.nn.linear import HalfLinear, HalfWeight

    model = copy.deepcopy(model)  # its weights are rounded to float16 values here
    model.decoder.set_step_kernel("half")  # float32 weights: half would not be exact
    assert model.decoder.step_kernel == "plain"
    assert type(model.decoder.layers[0].ffn.net[0]) is nn.Linear
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.copy_(p.half().float())
    state = model.state_dict().keys()
    enc, enc_lens = model.encode(torch.randn(1, 30, 8), torch.tensor([30]))
    ys = torch.randint(0, V, (5, 3))
    steps = {}
    for kernel in ("half", "packed", "plain"):
        model.decoder.set_step_kernel(kernel)
        layer_type = HalfLinear if kernel == "half" else nn.Linear
        assert type(model.decoder.layers[0].ffn.net[0]) is layer_type
        with torch.inference_mode():
            cache = model.new_cache(enc.expand(5, -1, -1), enc_lens.expand(5))
            steps[kernel] = model.decode_step(ys, cache, last_only=True)
        # "half" packs the unpadded window's cross-attention K/V for the kernel (5-D blocks).
        assert cache.cross[0][0].dim() == (5 if kernel == "half" and HalfWeight.available() else 4)
        assert model.state_dict().keys() == state
    for kernel in ("half", "packed"):
        torch.testing.assert_close(steps[kernel], steps["plain"], rtol=1e-5, atol=1e-5)
    model.decoder.set_step_kernel("half")
    with torch.inference_mode():
        padded = model.new_cache(enc.expand(2, -1, -1), torch.tensor([15, 9]))
    assert padded.cross[0][0].dim() == 4  # a padded window keeps sdpa and its mask
    with pytest.raises(ValueError, match="step kernel must be one of"):
        model.decoder.set_step_kernel("fast")


def test_backends_agree(model):
    torch.manual_seed(3)
    feats, lens = torch.randn(2, 40, 8), torch.tensor([40, 33])
    ys = torch.randint(0, V, (2, 5))
    out = {}
    for backend in ("sdpa", "eager"):
        model.set_attention_backend(backend)
        enc, enc_lens = model.encode(feats, lens)
        out[backend] = model.decode(ys, enc, enc_lens)
    model.set_attention_backend("sdpa")
    torch.testing.assert_close(out["sdpa"], out["eager"], atol=1e-5, rtol=1e-5)


def test_forward_loss_is_label_smoothed_ce_and_trains():
    torch.manual_seed(4)
    model = WhisperModel(tiny_cfg(label_smoothing=0.1))
    feats, lens = torch.randn(2, 30, 8), torch.tensor([30, 24])
    ys_in = torch.tensor([[SOT, 5, 6, 7], [SOT, 8, 9, EOT], [SOT, 3, EOT, EOT]])
    ys_out = torch.tensor([[5, 6, 7, EOT], [8, 9, EOT, -100], [3, EOT, -100, -100]])
    target_utt = torch.tensor([0, 1, 1])
    out = model(feats, lens, ys_in, ys_out, None, None, target_utt=target_utt)
    assert set(out) == {"loss", "loss_att", "loss_ctc", "acc", "num_tokens"}
    enc, enc_lens = model.encode(feats, lens)
    logits = model.decode(ys_in, enc[target_utt], enc_lens[target_utt])
    valid = ys_out != -100
    expected = F.cross_entropy(logits[valid], ys_out[valid], label_smoothing=0.1)
    torch.testing.assert_close(out["loss"], expected)
    assert float(out["loss_ctc"]) == 0.0 and int(out["num_tokens"]) == 9
    out["loss"].backward()
    assert model.encoder.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(NotImplementedError, match="ctc_weight 0"):
        model.ctc_log_probs(enc)


def test_decoders_run_on_the_model(model):
    torch.manual_seed(5)
    enc, enc_lens = model.encode(torch.randn(2, 40, 8), torch.tensor([40, 26]))
    ids = SpecialIds(eos=EOT, blank=-1, suppress=(SOT,))
    prefix = torch.tensor([[SOT, 32], [SOT, 32]])
    greedy = greedy_search(model, enc, enc_lens, prefix, DecodeOptions(beam_size=1, max_len=8), ids)
    beam = beam_search(model, enc, enc_lens, prefix, DecodeOptions(beam_size=3, max_len=8), ids)
    for g, b in zip(greedy, beam):
        assert 1 <= len(g[0].tokens) <= 8 and SOT not in g[0].tokens
        assert b[0].score >= g[0].score - 1e-5  # beam never ranks below the greedy path here


def test_registry_builds_whisper():
    assert MODELS["whisper"] is WhisperModel
    assert isinstance(build_model(tiny_cfg(), "whisper"), WhisperModel)
    with pytest.raises(TypeError, match="WhisperConfig"):
        build_model(S2TConfig(vocab_size=5), "whisper")


def test_few_row_logits_match_the_batched_product(model):
    # Beam steps (<= 8 rows) take the table-as-left-operand product; more rows the usual one.
    torch.manual_seed(1)
    feats = torch.randn(1, 40, model.cfg.n_mels)
    enc, enc_lens = model.encode(feats, torch.tensor([40]))
    ys = torch.randint(0, model.cfg.n_vocab, (4, 1))
    with torch.inference_mode():
        few = model.decode_step(ys, model.new_cache(enc.expand(4, -1, -1), enc_lens.expand(4)))
        many = model.decode_step(
            ys.repeat(3, 1), model.new_cache(enc.expand(12, -1, -1), enc_lens.expand(12))
        )
    assert few.shape == (4, 1, model.cfg.n_vocab)
    assert few.is_contiguous()  # (rows, V) as the search's log-softmax and top-k read it
    torch.testing.assert_close(few, many[:4], rtol=1e-5, atol=1e-5)


def test_few_row_logits_keep_autograd(model):
    """A step's logits in grad mode (the table trainable, the input not) still backpropagate."""
    x = torch.randn(5, 1, model.cfg.n_text_state)
    logits = model.decoder._logits(x)
    assert logits.requires_grad
    logits.sum().backward()
    assert model.decoder.embed.weight.grad is not None
    torch.testing.assert_close(logits.detach(), x @ model.decoder.embed.weight.detach().t(),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
