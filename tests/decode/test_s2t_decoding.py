"""Decoding a real (tiny, random) S2TModel: strategies agree where they must."""

from __future__ import annotations

import pytest
import torch

from speechkit.decode import (
    DecodeOptions,
    SpecialIds,
    beam_search,
    decode,
    greedy_search,
)

s2t = pytest.importorskip("speechkit.models.s2t")

EOS = 3
IDS = SpecialIds(eos=EOS, blank=0, suppress=(0, 1, 2, 4, 5, 6))
PREFIX = [2, 7, 8, 6]  # <sos> <lang> <task> <notimestamps>


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    cfg = s2t.S2TConfig(
        n_mels=16,
        vocab_size=24,
        d_model=32,
        n_heads=2,
        encoder_type="transformer",
        encoder_layers=1,
        encoder_ffn=32,
        decoder_layers=2,
        decoder_ffn=32,
        dropout=0.0,
        attention_dropout=0.0,
    )
    model = s2t.S2TModel(cfg).eval()
    feats = torch.randn(3, 60, 16)
    feat_lens = torch.tensor([60, 41, 27])
    with torch.inference_mode():
        enc, enc_lens = model.encode(feats, feat_lens)
    prefix = torch.tensor([PREFIX] * 3)
    return model, feats, feat_lens, enc, enc_lens, prefix


def test_greedy_equals_beam_size_one(batch):
    model, _, _, enc, enc_lens, prefix = batch
    opts = DecodeOptions(beam_size=1, max_len=5, length_norm=False)
    g = greedy_search(model, enc, enc_lens, prefix, opts, IDS)
    b = beam_search(model, enc, enc_lens, prefix, opts, IDS)
    for gh, bh in zip(g, b):
        assert gh[0].tokens == bh[0].tokens
        assert gh[0].score == pytest.approx(bh[0].score, abs=1e-4)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.3])
def test_batched_beam_equals_per_utterance(batch, ctc_weight):
    model, _, _, enc, enc_lens, prefix = batch
    opts = DecodeOptions(beam_size=3, nbest=2, max_len=5, ctc_weight=ctc_weight, ctc_top_k=5)
    batched = beam_search(model, enc, enc_lens, prefix, opts, IDS)
    for i in range(enc.shape[0]):
        n = int(enc_lens[i])
        single = beam_search(model, enc[i : i + 1, :n], enc_lens[i : i + 1], prefix[:1], opts, IDS)
        assert [h.tokens for h in batched[i]] == [h.tokens for h in single[0]]
        assert batched[i][0].score == pytest.approx(single[0][0].score, abs=1e-3)


def test_outputs_respect_rules(batch):
    model, feats, feat_lens, *_ = batch
    opts = DecodeOptions(beam_size=2, max_len=6, ctc_weight=0.3, ctc_top_k=4)
    out = decode(model, feats, feat_lens, torch.tensor([PREFIX] * 3), opts, IDS)
    assert len(out) == 3
    for nbest in out:
        toks = nbest[0].tokens
        assert len(toks) <= 6
        assert not set(toks) & set(IDS.suppress) and EOS not in toks
