"""ESPnet-compatible search rules: ``stop="espnet"`` and ``ctc_prompt_offset``.

Parity with ESPnet's own ``Speech2Text`` is tested in tests/convert/test_convert_espnet.py; these
tests pin the rules themselves on scripted models and brute-force CTC sums.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from decode_fakes import BLANK, EOS, SOS, ScriptedModel, fake_encoder

from speechkit.decode import CTCPrefixScorer, DecodeOptions, SpecialIds, beam_search


def _collapse(path):
    out, prev = [], None
    for k in path:
        if k != prev and k != BLANK:
            out.append(k)
        prev = k
    return out


def _brute_prefix(p: torch.Tensor, prefix: list[int], first_frame: int) -> float:
    """P(the CTC output starts with ``prefix``), counting only paths whose first non-blank frame
    is >= ``first_frame``: sum over t of P(frames 0..t-1 collapse to prefix[:-1], frame t emits
    prefix[-1] as a new token)."""
    T, V = p.shape
    total = 0.0
    for t in range(T):
        for head in itertools.product(range(V), repeat=t):
            if _collapse(head) != prefix[:-1] or (head and head[-1] == prefix[-1]):
                continue
            emitted = [s for s, k in enumerate(head) if k != BLANK] + [t]
            if emitted[0] < first_frame:
                continue
            prob = p[t, prefix[-1]].item()
            for s, k in enumerate(head):
                prob *= p[s, k].item()
            total += prob
    return total


@pytest.mark.parametrize("offset", [0, 2])
def test_ctc_prompt_offset_matches_brute_force(offset):
    g = torch.Generator().manual_seed(3)
    logp = torch.randn(1, 5, 4, generator=g).log_softmax(-1)  # T=5, V=4 (eos = 2 unused)
    p = logp[0].exp()
    scorer = CTCPrefixScorer(logp, torch.tensor([5]), BLANK, EOS, offset=offset)
    state = scorer.initial_state(torch.tensor([0]))
    cand = torch.tensor([[1, 3]])
    psi, r = scorer.score(state, cand, step=0)
    for j, c in enumerate((1, 3)):
        assert math.exp(psi[0, j]) == pytest.approx(_brute_prefix(p, [c], offset), rel=1e-5)
    # One more token: the prompt offset keeps holding for the whole prefix.
    state = scorer.advance(psi, r, cand, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    psi2, _ = scorer.score(state, torch.tensor([[3]]), step=1)
    assert math.exp(psi2[0, 0]) == pytest.approx(_brute_prefix(p, [1, 3], offset), rel=1e-5)


def _search(table, **kw):
    model = ScriptedModel(8, table)
    enc, enc_lens = fake_encoder([0], T=8)
    opts = DecodeOptions(length_norm=False, **kw)
    hyps = beam_search(model, enc, enc_lens, torch.tensor([[SOS]]), opts, SpecialIds(eos=EOS))
    return model, hyps[0]


def test_espnet_stop_ended_hypotheses_take_beam_slots():
    """With K=2, an <eos> among the two best candidates leaves one live beam (ESPnet), so the
    third candidate 4 is gone; the default rule keeps K live beams and ends [4] later."""
    table = {(): {EOS: 0.5, 3: 0.3, 4: 0.2}, (3,): {EOS: 0.6, 5: 0.4}, (4,): {EOS: 1.0}}
    _, espnet = _search(table, beam_size=2, nbest=2, max_len=4, stop="espnet")
    _, bound = _search(table, beam_size=2, nbest=2, max_len=4)
    assert [h.tokens for h in espnet] == [[], [3]]
    assert [h.tokens for h in bound] == [[], [4]]


def test_espnet_stop_budget_end_adds_no_eos_score():
    table = {(): {3: 0.9, 4: 0.1}, (3,): {5: 0.9, EOS: 0.1}, (3, 5): {6: 0.99, EOS: 0.01}}
    model, hyps = _search(table, beam_size=2, max_len=2, max_len_ratio=10.0, stop="espnet")
    best = hyps[0]
    assert best.tokens == [3, 5]
    expected = (model.next_logp(0, ())[3] + model.next_logp(0, (3,))[5]).item()
    assert best.score == pytest.approx(expected, abs=1e-5)
    _, bound = _search(table, beam_size=2, max_len=2, max_len_ratio=10.0)
    assert bound[0].score < expected - 1.0  # the default rule scores the forced <eos>


def test_stop_option_is_validated():
    from speechkit.config import ConfigError

    with pytest.raises(ConfigError, match="'bound', 'count' or 'espnet'"):
        DecodeOptions(stop="greedy")


def test_espnet_end_detect_stops_when_recent_endings_are_hopeless():
    """Only 3 and <eos> may be emitted. The best ending is [] (log .9); from step 1 on, each step
    ends [3, ..., 3] about 14 nats worse. ESPnet's rule at step i looks at sequence lengths i,
    i-1, i-2 (prefix + tokens + <eos> = step + 2), i.e. hypotheses ended at steps i-2..i-4,
    which must all be hopeless: first at i = 5, so the decoder runs once for the prefix and
    once after each of steps 0-4. Without the rule the search runs to its budget."""
    table = {(): {EOS: 0.9, 3: 0.1}}
    for k in range(1, 40):
        table[(3,) * k] = {3: 0.99999, EOS: 0.00001}
    model = ScriptedModel(4, table)
    enc, enc_lens = fake_encoder([0], T=8)
    ids = SpecialIds(eos=EOS, blank=BLANK, suppress=(BLANK, SOS))
    prefix = torch.tensor([[SOS]])
    kw = dict(beam_size=2, max_len=30, max_len_ratio=10.0, stop="espnet", length_norm=False)
    hyps = beam_search(model, enc, enc_lens, prefix, DecodeOptions(end_detect=True, **kw), ids)
    assert model.steps == 6 and hyps[0][0].tokens == []
    model.steps = 0
    beam_search(model, enc, enc_lens, prefix, DecodeOptions(**kw), ids)
    assert model.steps == 30


def test_end_detect_needs_espnet_stop():
    from speechkit.config import ConfigError

    with pytest.raises(ConfigError, match="end_detect"):
        DecodeOptions(end_detect=True)
