"""Tests for speechkit/data/gold_split.py: per-language gold budgets that nest."""

import pytest
from weak_cuts import corpus, text_cut

from speechkit.data.gold_split import select_gold


def _seconds(cuts, ids, lang):
    return sum(c.duration for c in cuts if c.id in ids and c.supervisions[0].language == lang)


def test_each_language_gets_its_share_of_audio():
    cuts = corpus(10)  # 30 cuts of 2 s per language
    ids = select_gold(cuts, 0.1, seed=0)
    for lang in ("eng", "deu"):
        assert _seconds(cuts, ids, lang) == pytest.approx(6.0)  # 10 % of 60 s


def test_budgets_nest_and_do_not_depend_on_other_cuts():
    cuts = corpus(10)
    small, large = select_gold(cuts, 0.05, 3), select_gold(cuts, 0.25, 3)
    assert small < large
    fewer = [c for c in cuts if c.supervisions[0].language == "eng"]
    assert select_gold(fewer, 0.25, 3) == {i for i in large if i.startswith("eng")}
    assert select_gold(cuts, 0.25, 4) != large  # the seed chooses


def test_every_language_gets_at_least_one_cut():
    cuts = corpus(10) + [text_cut("fra-0", "fra", "bonjour")]
    assert "fra-0" in select_gold(cuts, 0.02, 0)


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_fraction_is_checked(fraction):
    with pytest.raises(ValueError):
        select_gold(corpus(1), fraction)
