"""Beam search against scripted models whose best sequence is known."""

from __future__ import annotations

import math

import pytest
import torch
from decode_fakes import EOS, SOS, RandomTreeModel, ScriptedModel, fake_encoder

from speechkit.decode import DecodeOptions, SpecialIds, beam_search, greedy_search

IDS = SpecialIds(eos=EOS, blank=0, suppress=(0, SOS))
A, B_, C = 3, 4, 5  # text tokens

# Greedy takes "a" (0.5) and then can only reach 0.5 * 0.35; "b eos" has 0.4 * 0.9 = 0.36.
GARDEN_PATH = {
    (): {A: 0.5, B_: 0.4, EOS: 0.1},
    (A,): {B_: 0.35, C: 0.35, EOS: 0.3},
    (A, B_): {EOS: 1.0},
    (A, C): {EOS: 1.0},
    (B_,): {EOS: 0.9, C: 0.1},
}


def _run(model, opts, utts=(0,), fn=beam_search, lens=None):
    enc, enc_lens = fake_encoder(list(utts), lens=lens)
    prefix = torch.full((len(utts), 1), SOS)
    return fn(model, enc, enc_lens, prefix, opts, IDS)


def test_beam_finds_sequence_greedy_misses():
    model = ScriptedModel(6, GARDEN_PATH)
    greedy = _run(model, DecodeOptions(beam_size=1), fn=greedy_search)[0][0]
    beam = _run(model, DecodeOptions(beam_size=3))[0][0]
    assert greedy.tokens[0] == A
    assert beam.tokens == [B_]
    assert beam.att_logp == pytest.approx(math.log(0.4 * 0.9), abs=1e-3)
    assert beam.score == pytest.approx(math.log(0.36) / 2, abs=1e-3)


def test_nbest_sorted_and_unnormalised_scores():
    model = ScriptedModel(6, GARDEN_PATH)
    nbest = _run(model, DecodeOptions(beam_size=3, nbest=3, length_norm=False))[0]
    assert len(nbest) == 3
    scores = [h.score for h in nbest]
    assert scores == sorted(scores, reverse=True)
    assert nbest[0].score == pytest.approx(math.log(0.36), abs=1e-3)
    assert nbest[0].tokens == [B_]


def test_length_penalty_prefers_longer_output():
    # "b" has 0.4 * 0.9 = 0.36, "a b" has 0.5 * 0.6 = 0.3: a per-token bonus of 2 flips them.
    table = {
        (): {A: 0.5, B_: 0.4, C: 0.099, EOS: 0.001},
        (A,): {B_: 0.6, C: 0.4},
        (B_,): {EOS: 0.9, C: 0.1},
    }
    model = ScriptedModel(6, table)
    plain = _run(model, DecodeOptions(beam_size=3, length_norm=False))[0][0]
    bonus = _run(model, DecodeOptions(beam_size=3, length_norm=False, length_penalty=2.0))[0][0]
    assert plain.tokens == [B_]
    assert bonus.tokens == [A, B_]
    assert bonus.score == pytest.approx(math.log(0.3) + 3 * 2.0, abs=1e-2)


def test_min_and_max_len():
    model = ScriptedModel(6, GARDEN_PATH)
    longer = _run(model, DecodeOptions(beam_size=3, min_len=2))[0][0]
    assert len(longer.tokens) >= 2
    capped = _run(model, DecodeOptions(beam_size=3, max_len=1, min_len=0))[0][0]
    assert len(capped.tokens) <= 1
    # The budget also scales with the encoder length: ratio 0.01 * 8 frames + 10 = 10 tokens.
    endless = ScriptedModel(6, {tuple([A] * n): {A: 0.99} for n in range(50)})
    out = _run(endless, DecodeOptions(beam_size=2, max_len_ratio=0.01))[0][0]
    assert len(out.tokens) == 10


def test_suppressed_tokens_never_emitted():
    model = ScriptedModel(6, {(): {SOS: 0.9, A: 0.05}})
    out = _run(model, DecodeOptions(beam_size=2))[0][0]
    assert SOS not in out.tokens and out.tokens[0] == A


def test_greedy_equals_beam_size_one():
    # Without length terms scores only fall, so a beam of one stops where greedy does (with
    # length normalisation it may legitimately go on and find a better-normalised output).
    model = RandomTreeModel(12)
    opts = DecodeOptions(beam_size=1, max_len=15, length_norm=False)
    utts = (0, 1, 2, 3, 4)
    g = _run(model, opts, utts, fn=greedy_search)
    b = _run(model, opts, utts)
    for gh, bh in zip(g, b):
        assert gh[0].tokens == bh[0].tokens
        assert gh[0].score == pytest.approx(bh[0].score, abs=1e-5)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.4])
def test_batched_equals_per_utterance(ctc_weight):
    model = RandomTreeModel(12)
    opts = DecodeOptions(beam_size=4, nbest=2, max_len=12, ctc_weight=ctc_weight, ctc_top_k=6)
    utts, lens = (0, 1, 2, 3), [8, 5, 8, 3]
    batched = _run(model, opts, utts, lens=lens)
    for i, u in enumerate(utts):
        single = _run(model, opts, (u,), lens=[lens[i]])[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in single]
        for hb, hs in zip(batched[i], single):
            assert hb.score == pytest.approx(hs.score, abs=1e-4)


def test_beam_never_worse_than_greedy_on_random_trees():
    model = RandomTreeModel(10)
    opts_g = DecodeOptions(beam_size=1, length_norm=False, max_len=10)
    opts_b = DecodeOptions(beam_size=6, length_norm=False, max_len=10)
    utts = tuple(range(6))
    g = _run(model, opts_g, utts, fn=greedy_search)
    b = _run(model, opts_b, utts)
    for gh, bh in zip(g, b):
        assert bh[0].score >= gh[0].score - 1e-5


@pytest.mark.parametrize("stop", ["bound", "count", "espnet"])
def test_row_top_candidates_select_what_all_tokens_select(stop):
    """Ranking each row's 2K best tokens picks the same beams, ended hypotheses and scores as
    ranking all N x V candidates (random scores, no ties, some beams and tokens at -inf)."""
    from speechkit.decode.beam_search import BeamSearch, _Candidates

    K, A, V = 3, 2, 50
    gen = torch.Generator().manual_seed(0)
    opts = DecodeOptions(beam_size=K, max_len=20, stop=stop)
    search = BeamSearch(None, opts, IDS)
    for trial in range(20):
        logp = torch.randn(A * K, V, generator=gen).log_softmax(-1)
        logp[:, 0] = float("-inf")  # a suppressed token
        logp[:, EOS] += 2.0 * (trial % 2)  # every other trial, <eos> ranks high
        att = torch.randn(A * K, generator=gen)
        att[1] = float("-inf")  # a dead beam
        picked = []
        for cand in (search._candidates(logp, att, None, None, 3),
                     _Candidates(att[:, None] + logp, att[:, None] + logp, None, None, None)):  # fmt: skip
            assert cand.total.shape[1] == (2 * K if cand.tokens is not None else V)
            utts, ended = torch.arange(A), [[] for _ in range(A)]
            budget = torch.full((A,), 20)
            tokens = torch.arange(A * K)[:, None]
            if stop == "espnet":
                src, col, done, _ = search._select_espnet(cand, 3, utts, tokens, ended, budget)
            else:
                src, col, done = search._select(cand, 3, utts, tokens, ended, budget)
            picked.append((src.tolist(), cand.token(src, col).tolist(), cand.att[src, col].tolist(),
                           done.tolist(), ended))  # fmt: skip
        assert picked[0] == picked[1]
