"""The analytic FLOP counts of models/s2t_flops.py against torch's FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.models.s2t_flops import decoder_module_flops, fixed_flops, utterance_gflops


def _count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("encoder_type", ["ebranchformer", "transformer"])
@pytest.mark.parametrize(("frames", "tokens"), [(67, 5), (203, 17), (401, 9)])
def test_encoder_and_decoder_flops_match_the_flop_counter(encoder_type, frames, tokens):
    cfg = S2TConfig(
        n_mels=20, vocab_size=50, d_model=32, n_heads=4, encoder_type=encoder_type,
        encoder_layers=2, encoder_ffn=48, cgmlp_units=40, cgmlp_kernel=7, merge_conv_kernel=5,
        decoder_layers=2, decoder_ffn=56, dropout=0.0, attention_dropout=0.0,
        subsampling_channels=8,
    )  # fmt: skip
    model = S2TModel(cfg).eval()
    # Eager attention: FlopCounterMode does not count the CPU fused sdpa kernel.
    model.set_attention_backend("eager")
    feats, lens = torch.randn(1, frames, 20), torch.tensor([frames])
    ys = torch.randint(4, 50, (1, tokens))
    with torch.no_grad():
        enc_counted = _count(lambda: model.encode(feats, lens))
        enc, enc_lens = model.encode(feats, lens)
        dec_counted = _count(lambda: model.decode(ys, enc, enc_lens))
    T = enc_lens
    # FlopCounterMode does not see the CPU depthwise convolution (shifted multiply-adds).
    enc_gf, dec_gf = utterance_gflops(cfg, lens, T, torch.tensor([tokens]), depthwise=False)
    assert enc_gf.item() * 1e9 == pytest.approx(enc_counted, rel=0.03)
    assert dec_gf.item() * 1e9 == pytest.approx(dec_counted, rel=0.03)


@pytest.mark.parametrize(("rows", "tokens"), [(1, 6), (5, 6), (4, 11)])
def test_decoder_flops_for_a_beam_match_the_flop_counter_of_cached_steps(rows, tokens):
    """rows R: what a beam search of R hypotheses computes (cross-attention K/V once, every
    token's step R times), counted on the cached incremental steps the search runs."""
    cfg = S2TConfig(
        n_mels=20, vocab_size=50, d_model=32, n_heads=4, encoder_type="transformer",
        encoder_layers=1, encoder_ffn=48, decoder_layers=2, decoder_ffn=56, dropout=0.0,
        attention_dropout=0.0, subsampling_channels=8,
    )  # fmt: skip
    model = S2TModel(cfg).eval()
    model.set_attention_backend("eager")
    feats, lens = torch.randn(1, 203, 20), torch.tensor([203])
    ys = torch.randint(4, 50, (rows, tokens))

    def search():
        cache = model.new_cache(enc, enc_lens)
        cache.reorder(torch.zeros(rows, dtype=torch.long))
        for t in range(tokens):
            model.decode_step(ys[:, t : t + 1], cache, last_only=True)

    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lens)
        counted = _count(search)
    L = torch.tensor([tokens])
    flops = (
        decoder_module_flops(cfg, L, enc_lens, rows=rows).sum()
        + rows * fixed_flops(cfg, lens, L)[1]
    )
    # the analytic count prices self-attention at L^2 pairs, the cache computes L (L + 1) / 2
    assert flops.item() == pytest.approx(counted, rel=0.03)
    if rows > 1:
        assert flops.item() > 1.5 * (decoder_module_flops(cfg, L, enc_lens).sum().item())


def test_gates_remove_their_modules_flops():
    cfg = S2TConfig(vocab_size=50, d_model=32, n_heads=4, encoder_layers=2, decoder_layers=2)
    frames, T, L = torch.tensor([400]), torch.tensor([99]), torch.tensor([12])
    full_enc, full_dec = utterance_gflops(cfg, frames, T, L)
    enc_off = torch.ones(1, 8)
    enc_off[0, 1] = 0  # layer 0's attention
    dec_off = torch.ones(1, 6)
    dec_off[0, 4] = 0  # layer 1's cross-attention
    enc, dec = utterance_gflops(cfg, frames, T, L, enc_off, dec_off)
    assert 0 < enc.item() < full_enc.item() and 0 < dec.item() < full_dec.item()
    none_enc, none_dec = utterance_gflops(cfg, frames, T, L, torch.zeros(1, 8), torch.zeros(1, 6))
    assert none_enc.item() < enc.item() and none_dec.item() < dec.item()


@pytest.mark.parametrize("encoder_type", ["ebranchformer", "transformer"])
def test_partially_on_ffn_groups_match_the_flop_counter(encoder_type):
    cfg = GatedS2TConfig(
        n_mels=20, vocab_size=50, d_model=32, n_heads=4, encoder_type=encoder_type,
        encoder_layers=2, encoder_ffn=48, cgmlp_units=40, cgmlp_kernel=7, merge_conv_kernel=5,
        decoder_layers=2, decoder_ffn=56, dropout=0.0, attention_dropout=0.0,
        subsampling_channels=8, gate_mode="none", gate_ffn_groups=4,
    )  # fmt: skip
    model = GatedS2TModel(cfg).eval()
    model.set_attention_backend("eager")
    g = torch.Generator().manual_seed(0)
    enc_g = torch.rand(1, model.n_enc, generator=g) > 0.5
    dec_g = torch.rand(1, model.n_dec, generator=g) > 0.5
    dec_g[0, [1, 1 + len(model.dec_names) // 2]] = True  # cross-attention on (its K/V counted)
    assert any(not on for n, on in zip(model.enc_names, enc_g[0]) if "ffn" in n)
    frames, tokens = 203, 9
    feats, lens = torch.randn(1, frames, 20), torch.tensor([frames])
    ys = torch.randint(4, 50, (1, tokens))
    with torch.no_grad():
        x, T = model.encoder.front_end(feats, lens)
        enc_counted = _count(lambda: model.encoder.front_end(feats, lens))
        per_layer = [tuple(g.tolist()) for g in enc_g.view(2, -1)]
        enc_counted += _count(lambda: model.encoder.run_layers(x, T, per_layer))
        enc, _ = model.encoder.run_layers(x, T, per_layer)
        dec = model.gated_decoder(tuple(dec_g[0].tolist()))
        dec_counted = _count(lambda: dec.decode_step(ys, dec.new_cache(enc, T)))
    enc_gf, dec_gf = utterance_gflops(cfg, lens, T, torch.tensor([tokens]), enc_g, dec_g,
                                      depthwise=False, ffn_groups=4)  # fmt: skip
    # Only matrix products are run here (no depthwise conv counted): the counts are exact.
    assert enc_gf.item() * 1e9 == pytest.approx(enc_counted, rel=1e-6)
    assert dec_gf.item() * 1e9 == pytest.approx(dec_counted, rel=1e-6)
    full_enc, full_dec = utterance_gflops(cfg, lens, T, torch.tensor([tokens]), depthwise=False)
    assert enc_gf.item() < full_enc.item() and dec_gf.item() < full_dec.item()
