"""DecodeOptions validation, budgets, scoring and the shared emission rules."""

from __future__ import annotations

import math

import pytest
import torch

from speechkit.config import ConfigError, from_dict
from speechkit.decode.options import DecodeOptions, SpecialIds, constrain_next_token


@pytest.mark.parametrize(
    "bad, word",
    [
        ({"beam_size": 0}, "beam_size"),
        ({"ctc_weight": 1.5}, "ctc_weight"),
        ({"ctc_top_k": 1}, "ctc_top_k"),
        ({"max_len": 0}, "max_len"),
        ({"max_len_ratio": 0.0}, "max_len_ratio"),
        ({"min_len": 300}, "min_len"),
        ({"beam_size": 2, "nbest": 3}, "nbest"),
    ],
)
def test_bad_values_raise_config_error(bad, word):
    with pytest.raises(ConfigError, match=word):
        DecodeOptions(**bad)


def test_from_dict_rejects_unknown_key():
    with pytest.raises(ConfigError, match="beam"):
        from_dict(DecodeOptions, {"beam": 3})


def test_max_tokens_is_min_of_cap_and_ratio():
    opts = DecodeOptions(max_len=50, max_len_ratio=0.5)
    assert opts.max_tokens(20) == 20  # 0.5 * 20 + 10
    assert opts.max_tokens(1000) == 50


def test_final_score_normalisation_and_penalty():
    assert DecodeOptions().final_score(-6.0, 3) == pytest.approx(-2.0)
    unnorm = DecodeOptions(length_norm=False, length_penalty=0.5)
    assert unnorm.final_score(-6.0, 3) == pytest.approx(-4.5)


def test_constrain_rules():
    ids = SpecialIds(eos=2, blank=0, suppress=(0, 1))
    logp = torch.full((3, 5), math.log(0.2))
    budget = torch.tensor([5, 1, 1])
    opts = DecodeOptions(min_len=2)
    out = constrain_next_token(logp, 1, budget, opts, ids)
    assert torch.isinf(out[:, :2]).all()  # suppressed everywhere
    assert torch.isinf(out[0, 2])  # eos forbidden below min_len ...
    assert out[1, 2] == 0.0  # ... unless the budget is used up: eos is forced
    assert torch.isinf(out[1, 3:]).all()
    assert torch.equal(logp, torch.full((3, 5), math.log(0.2)))  # input untouched


def test_special_ids_from_tokenizer():
    class Tok:
        num_special, eos_id, blank_id = 9, 3, 0

    ids = SpecialIds.from_tokenizer(Tok())
    assert ids.eos == 3 and 3 not in ids.suppress and set(ids.suppress) == set(range(9)) - {3}
