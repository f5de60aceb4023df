"""CTC prefix scores against brute-force alignment sums and torch's ctc_loss."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from decode_fakes import EOS, SOS, ScriptedModel, fake_encoder

from speechkit.decode import CTCPrefixScorer, DecodeOptions, SpecialIds, beam_search

BLANK = 0
V = 5  # blank, sos(unused), eos, tokens 3 and 4


def _collapse(path):
    out, prev = [], None
    for k in path:
        if k != prev and k != BLANK:
            out.append(k)
        prev = k
    return out


def _brute_prefix(logp: torch.Tensor, prefix: list[int]) -> float:
    """log sum over all V**T alignments whose collapse starts with ``prefix``."""
    T = logp.shape[0]
    total = 0.0
    for path in itertools.product(range(V), repeat=T):
        if _collapse(path)[: len(prefix)] == prefix:
            total += math.exp(sum(float(logp[t, k]) for t, k in enumerate(path)))
    return math.log(total)


def _walk(scorer, prefix, utt=0):
    """Feeds ``prefix`` token by token; returns the final state and the last psi."""
    state = scorer.initial_state(torch.tensor([utt]))
    psi = torch.zeros(1)
    for tok in prefix:
        cand = torch.tensor([[tok]])
        psi_c, r = scorer.score(state, cand)
        zero = torch.zeros(1, dtype=torch.long)
        state = scorer.advance(psi_c, r, cand, zero, zero, torch.tensor([utt]))
        psi = psi_c[0]
    return state, psi


@pytest.fixture
def logp():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 5, V, generator=g).log_softmax(-1)


@pytest.mark.parametrize("prefix", [[3], [4], [3, 3], [3, 4], [4, 3, 4], [3, 3, 3]])
def test_prefix_probability_matches_brute_force(logp, prefix):
    scorer = CTCPrefixScorer(logp, torch.tensor([5, 5]), blank=BLANK, eos=EOS)
    _, psi = _walk(scorer, prefix)
    assert float(psi) == pytest.approx(_brute_prefix(logp[0], prefix), abs=1e-4)


@pytest.mark.parametrize("prefix", [[3], [3, 4], [4, 4], [3, 4, 3]])
@pytest.mark.parametrize("length", [5, 3])
def test_eos_score_equals_ctc_loss(logp, prefix, length):
    # Utterance 1 is padded to 5 frames when length == 3: padding must not change the result.
    scorer = CTCPrefixScorer(logp, torch.tensor([5, length]), blank=BLANK, eos=EOS)
    state, _ = _walk(scorer, prefix, utt=1)
    both, _ = scorer.score(state, torch.tensor([[EOS, 3]]))
    loss = F.ctc_loss(
        logp[1:2, :length].transpose(0, 1),
        torch.tensor([prefix]),
        torch.tensor([length]),
        torch.tensor([len(prefix)]),
        blank=BLANK,
        reduction="sum",
        zero_infinity=False,
    )
    assert float(both[0, 0]) == pytest.approx(-float(loss), abs=1e-4)


def test_many_candidates_at_once_match_one_by_one(logp):
    scorer = CTCPrefixScorer(logp, torch.tensor([5, 4]), blank=BLANK, eos=EOS)
    state, _ = _walk(scorer, [3], utt=1)
    batch, _ = scorer.score(state, torch.tensor([[3, 4, EOS]]))
    for j, tok in enumerate([3, 4]):
        _, psi = _walk(scorer, [3, tok], utt=1)
        assert float(batch[0, j]) == pytest.approx(float(psi), abs=1e-5)


def test_ctc_weight_reranks_beam():
    # Attention slightly prefers "3" over "4"; the CTC posteriors clearly say "4".
    table = {(): {3: 0.55, 4: 0.45}, (3,): {EOS: 1.0}, (4,): {EOS: 1.0}}
    T = 4
    ctc = torch.full((1, T, V), 1e-3)
    ctc[0, :, BLANK] = 0.5
    ctc[0, 1:3, 4] = 0.9
    ctc = (ctc / ctc.sum(-1, keepdim=True)).log()
    model = ScriptedModel(V, table, ctc_logp=ctc)
    ids = SpecialIds(eos=EOS, blank=BLANK, suppress=(BLANK, SOS))
    enc, enc_lens = fake_encoder([0], T=T)
    prefix = torch.tensor([[SOS]])
    att_only = beam_search(model, enc, enc_lens, prefix, DecodeOptions(beam_size=2), ids)
    joint = beam_search(
        model,
        enc,
        enc_lens,
        prefix,
        DecodeOptions(beam_size=2, ctc_weight=0.5, ctc_top_k=3),
        ids,
    )
    assert att_only[0][0].tokens == [3]
    assert joint[0][0].tokens == [4]
    assert joint[0][0].ctc_logp < 0.0
