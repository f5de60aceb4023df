"""Tests for speechkit/data/corrupt.py: synthetic weak transcripts at a controlled WER."""

import random

import pytest
from weak_cuts import TEXTS, corpus

from speechkit.data.corrupt import Corruption, corrupt_cuts, corrupt_words, proportions_of
from speechkit.data.weak import language_vocabularies, weak_error_rates
from speechkit.metrics import wer

VOCAB = language_vocabularies((lang, t) for lang, texts in TEXTS.items() for t in texts)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.4])
def test_achieved_wer_is_close_to_the_target(rate):
    rng = random.Random(0)
    words = "the quick brown fox jumps over the lazy dog".split()
    vocab = sorted(VOCAB["eng"])
    refs, hyps = [], []
    for _ in range(400):
        refs.append(" ".join(words))
        hyps.append(" ".join(corrupt_words(words, vocab, Corruption(rate), rng)))
    achieved = wer(refs, hyps).rate / 100
    # Scoring may align some edits more cheaply than they were made: a little under the target.
    assert rate * 0.85 <= achieved <= rate * 1.05


def test_error_types_follow_the_given_shares():
    rng = random.Random(1)
    words = "one two three four five six seven eight nine ten".split()
    refs, hyps = [], []
    for _ in range(300):
        refs.append(" ".join(words))
        c = Corruption(0.3, p_sub=0.0, p_del=1.0, p_ins=0.0)
        hyps.append(" ".join(corrupt_words(words, sorted(VOCAB["eng"]), c, rng)))
    e = wer(refs, hyps)
    assert e.deletions > 0 and e.substitutions == 0 and e.insertions == 0


def test_substitutes_come_from_the_language_vocabulary_and_differ_from_the_word():
    rng = random.Random(2)
    c = Corruption(1.0, p_sub=1.0, p_del=0.0, p_ins=0.0)
    out = corrupt_words(["bahnhof"] * 50, sorted(VOCAB["deu"]), c, rng)
    assert len(out) == 50 and "bahnhof" not in out and set(out) <= VOCAB["deu"]


def test_corrupt_cuts_is_seeded_per_cut_and_records_its_source():
    cuts = corpus(3)
    a = corrupt_cuts(cuts, VOCAB, Corruption(0.25), seed=0)
    b = corrupt_cuts(list(reversed(cuts)), VOCAB, Corruption(0.25), seed=0)
    c = corrupt_cuts(cuts, VOCAB, Corruption(0.25), seed=1)
    text = {x.id: x.supervisions[0].custom["weak_text"] for x in a}
    assert text == {x.id: x.supervisions[0].custom["weak_text"] for x in b}  # order-free
    assert text != {x.id: x.supervisions[0].custom["weak_text"] for x in c}
    sup = a[0].supervisions[0]
    assert sup.custom["weak_source"] == "synthetic-wer25"
    assert sup.custom["weak_hyps"] == {"synthetic-wer25": sup.custom["weak_text"]}
    assert sup.text == cuts[0].supervisions[0].text
    assert 0 < weak_error_rates(a)["all"]["rate"] < 50


def test_proportions_of_a_measured_error_rate():
    e = wer(["a b c d e"], ["a x c"])  # 1 substitution, 2 deletions
    assert proportions_of(e) == pytest.approx((1 / 3, 2 / 3, 0.0))
    assert proportions_of(e.as_dict()) == proportions_of(e)
    with pytest.raises(ValueError):
        proportions_of(wer(["a"], ["a"]))


def test_corruption_checks_its_values():
    assert Corruption(0.2, 3, 1, 0).p_sub == pytest.approx(0.75)
    with pytest.raises(ValueError):
        Corruption(1.5)
    with pytest.raises(ValueError):
        Corruption(0.1, 0, 0, 0)
