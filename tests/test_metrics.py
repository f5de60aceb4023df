"""Hand-computed WER/CER/BLEU/chrF cases and the normaliser's documented rules."""

from __future__ import annotations

import pytest

from speechkit.metrics import bleu, cer, chrf, normalize_text, wer


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, World!", "hello world"),
        ("Don’t STOP", "don't stop"),
        ("e-mail me - now", "e-mail me now"),
        ("'quoted' words", "quoted words"),
        ("ﬁne  \t spaced\n", "fine spaced"),
        ("Ｆｕｌｌ width", "full width"),
        ("Straße", "strasse"),
        ("a,b", "a b"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_one_substitution_in_four_words_is_25_percent():
    out = wer(["the cat sat down"], ["the dog sat down"])
    assert (out.errors, out.ref_units, out.substitutions) == (1, 4, 1)
    assert out.rate == pytest.approx(25.0)


def test_wer_ignores_case_and_punctuation_and_counts_each_kind():
    refs = ["Hello, world!", "one two three"]
    hyps = ["hello world", "one three four five"]
    out = wer(refs, hyps)
    # "one two three" -> "one three four five" needs 3 edits (e.g. two->three, three->four,
    # insert five); "hello world" matches after normalisation. 3 errors / 5 ref words.
    assert out.errors == 3
    assert out.ref_units == 5
    assert out.substitutions + out.deletions + out.insertions == 3
    assert out.rate == pytest.approx(60.0)


def test_empty_reference_counts_insertions():
    out = wer(["", "a b"], ["x y", "a b"])
    assert (out.errors, out.insertions, out.ref_units) == (2, 2, 2)


def test_cer_counts_characters():
    out = cer(["abcd"], ["abxd"])
    assert (out.errors, out.ref_units) == (1, 4)
    assert out.rate == pytest.approx(25.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])


def test_bleu_perfect_and_case_sensitivity():
    refs = ["The quick brown fox jumps over the lazy dog ."]
    perfect = bleu(refs, refs)
    assert perfect.cased == pytest.approx(100.0)
    lower = bleu(refs, ["the quick brown fox jumps over the lazy dog"])
    # Case and the final period cost points cased, nothing after normalisation.
    assert lower.cased < 100.0
    assert lower.lc_nopunct == pytest.approx(100.0)
    assert "13a" in perfect.signature


def test_bleu_hand_computed():
    # Last of 6 words wrong: n-gram precisions 5/6, 4/5, 3/4, 2/3, no brevity penalty,
    # so BLEU = (5/6 * 4/5 * 3/4 * 2/3) ** (1/4) = (1/3) ** 0.25.
    out = bleu(["a b c d e f"], ["a b c d e x"])
    assert out.cased == pytest.approx(100 * (1 / 3) ** 0.25, abs=1e-3)
    assert bleu(["a b c d"], ["w x y z"]).cased == pytest.approx(0.0)


def test_chrf_both_ways():
    refs = ["Guten Morgen!"]
    out = chrf(refs, ["guten morgen"])
    assert out.lc_nopunct == pytest.approx(100.0)
    assert 0.0 < out.cased < 100.0
    assert chrf(refs, refs).cased == pytest.approx(100.0)
