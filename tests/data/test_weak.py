"""Tests for speechkit/data/weak.py: the weak-text field, reading hypotheses, bad transcripts."""

import pytest
from lhotse import CutSet
from weak_cuts import TEXTS, corpus, text_cut

from speechkit.data.weak import (
    WeakChecks,
    admitted_sources,
    attach_weak,
    drop_bad_weak,
    language_vocabularies,
    read_hypotheses,
    strip_weak,
    transcript,
    weak_error_rates,
    weak_problem,
)


def test_attach_prefers_the_first_source_and_keeps_every_hypothesis():
    cuts = [text_cut("a", "eng", "where is the station"), text_cut("b", "deu", "wo ist er")]
    hyps = {"whisper": {"a": "where is this station"}, "seed": {"a": "we is", "b": "wo ist"}}
    out, chosen = attach_weak(cuts, hyps)
    a, b = (c.supervisions[0] for c in out)
    assert (a.custom["weak_text"], a.custom["weak_source"]) == ("where is this station", "whisper")
    assert a.custom["weak_hyps"] == {"whisper": "where is this station", "seed": "we is"}
    assert (b.custom["weak_text"], b.custom["weak_source"]) == ("wo ist", "seed")
    assert chosen == {"whisper": 1, "seed": 1}
    assert a.text == "where is the station"  # the gold text stays the reference
    assert a.custom["translations"] == {"fra": "bonjour"}


def test_admitted_sources_keep_the_languages_at_or_below_the_threshold():
    rates = {
        "whisper": {"eng": {"rate": 28.0}, "all": {"rate": 28.0}},
        "seed": {"eng": {"rate": 81.0}, "deu": {"rate": 50.0}, "all": {"rate": 70.0}},
    }
    assert admitted_sources(rates, 50.0) == {"whisper": ["eng"], "seed": ["deu"]}
    assert admitted_sources(rates, 20.0) == {"whisper": [], "seed": []}


def test_attach_with_admitted_sources_falls_back_and_rejects_per_language():
    cuts = [text_cut("a", "eng", "where is the station"), text_cut("b", "deu", "wo ist er"),
            text_cut("c", "eng", "the bus")]  # fmt: skip
    hyps = {"whisper": {"a": "where is a station"}, "seed": {"a": "we is", "b": "wo", "c": "bus"}}
    out, chosen = attach_weak(cuts, hyps, admitted={"whisper": ["eng"], "seed": ["deu"]})
    a, b, c = out
    assert a.supervisions[0].custom["weak_source"] == "whisper"
    assert b.supervisions[0].custom["weak_source"] == "seed"
    # Only the seed transcribed c, and it is not admitted for English: no weak text, so the
    # cut cannot pass for a gold one, and it is dropped by name.
    assert "weak_text" not in c.supervisions[0].custom
    assert c.supervisions[0].custom["weak_hyps"] == {"seed": "bus"}
    assert chosen == {"whisper": 1, "seed": 1, "rejected": 1}
    assert weak_problem(c, _checks()) == "source_rejected"
    # The rejected source's text is still scored per source (for the report), not as weak_text.
    assert weak_error_rates(out, "seed")["eng"]["utts"] == 2
    assert weak_error_rates(out)["eng"]["utts"] == 1
    # Admitting nothing in a language a source was trusted with before changes the choice.
    out, _ = attach_weak(cuts, hyps, admitted={"whisper": [], "seed": ["eng", "deu"]})
    assert out[0].supervisions[0].custom["weak_source"] == "seed"


def test_transcript_chooses_gold_or_weak_text_per_cut():
    weak, _ = attach_weak([text_cut("a", "eng", "gold words")], {"s": {"a": "weak words"}})
    gold = text_cut("b", "eng", "other gold")
    assert transcript(weak[0].supervisions[0], "text") == "gold words"
    assert transcript(weak[0].supervisions[0], "weak_text") == "weak words"
    assert transcript(gold.supervisions[0], "weak_text") == "other gold"  # a gold cut
    assert transcript(strip_weak(weak[0]).supervisions[0], "weak_text") == "gold words"
    with pytest.raises(ValueError, match="text_field"):
        transcript(gold.supervisions[0], "caption")


def test_weak_manifest_round_trips_through_lhotse(tmp_path):
    cuts, _ = attach_weak([text_cut("a", "eng", "gold")], {"s": {"a": "weak"}})
    CutSet.from_cuts(cuts).to_file(tmp_path / "w.jsonl.gz")
    sup = next(iter(CutSet.from_file(tmp_path / "w.jsonl.gz"))).supervisions[0]
    assert (sup.custom["weak_text"], sup.custom["weak_source"]) == ("weak", "s")


def test_read_hypotheses_from_transcribe_output_kaldi_file_and_decode_dir(tmp_path):
    tsv = tmp_path / "whisper.tsv"
    tsv.write_text("a\tWhere is the station?\nb\t\n", encoding="utf-8")
    assert read_hypotheses(tsv) == {"a": "Where is the station?", "b": ""}
    dec = tmp_path / "decode"
    for sub, line in [("asr_eng", "a where is"), ("asr_deu", "b wo ist"), ("st_eng-deu", "a x")]:
        (dec / sub).mkdir(parents=True)
        (dec / sub / "hyp.txt").write_text(line + "\n")
    assert read_hypotheses(dec) == {"a": "where is", "b": "wo ist"}  # translations ignored
    (dec / "asr_spa").mkdir()
    (dec / "asr_spa" / "hyp.txt").write_text("a again\n")
    with pytest.raises(ValueError, match="second hypothesis"):
        read_hypotheses(dec)
    with pytest.raises(FileNotFoundError):
        read_hypotheses(tmp_path / "missing.tsv")


def test_weak_error_rates_per_language_and_pooled():
    cuts = [text_cut("a", "eng", "one two three four"), text_cut("b", "deu", "eins zwei")]
    hyps = {"s": {"a": "one two tree", "b": "eins zwei"}, "t": {"a": "one two three four"}}
    out, _ = attach_weak(cuts, hyps)
    rates = weak_error_rates(out)
    assert rates["eng"]["rate"] == pytest.approx(50.0)  # 1 substitution, 1 deletion of 4
    assert (rates["eng"]["substitutions"], rates["eng"]["deletions"]) == (1, 1)
    assert rates["deu"]["rate"] == 0.0
    assert rates["all"]["rate"] == pytest.approx(100 * 2 / 6) and rates["all"]["utts"] == 2
    assert weak_error_rates(out, "t") == {
        lang: {**weak_error_rates(out, "t")[lang]} for lang in ("all", "eng")
    }
    assert weak_error_rates(out, "t")["eng"]["rate"] == 0.0


def _checks():
    vocab = language_vocabularies((lang, t) for lang, texts in TEXTS.items() for t in texts)
    return WeakChecks(max_words_per_second=5.0, vocabularies=vocab)


@pytest.mark.parametrize(
    ("lang", "weak", "seconds", "reason"),
    [
        ("eng", "where is the station", 2.0, None),
        ("eng", "", 2.0, "empty"),
        ("eng", " ... ?! ", 2.0, "empty"),  # punctuation only: no words
        ("eng", " ".join(["station"] * 13), 2.0, "too_long"),  # 13 words > 5/s * 2 s + 2
        ("eng", " ".join(["station"] * 12), 2.0, None),
        ("eng", "wo ist der bahnhof", 2.0, "wrong_language"),
        ("deu", "where is the station", 2.0, "wrong_language"),
        ("deu", "wo ist the station", 2.0, None),  # half German: not clearly another language
        ("eng", "bus", 2.0, None),  # one word: not judged for language
    ],
)
def test_weak_problem(lang, weak, seconds, reason):
    (cut,), _ = attach_weak([text_cut("a", lang, "x", seconds)], {"s": {"a": weak}})
    assert weak_problem(cut, _checks()) == reason


def test_drop_bad_weak_counts_every_dropped_cut_by_reason_and_language():
    cuts = corpus(1)
    hyps = {c.id: c.supervisions[0].text for c in cuts}
    hyps["eng-000"] = ""
    hyps["eng-001"] = "wo ist der bahnhof"
    hyps["deu-002"] = "word " * 40
    del hyps["deu-000"]
    out, _ = attach_weak(cuts, {"s": hyps})
    kept, dropped = drop_bad_weak(out, _checks())
    assert len(kept) == len(cuts) - 4
    assert dropped == {
        "empty": 1, "empty/eng": 1, "wrong_language": 1, "wrong_language/eng": 1,
        "too_long": 1, "too_long/deu": 1, "no_weak_text": 1, "no_weak_text/deu": 1,
    }  # fmt: skip
    assert {c.id for c in kept}.isdisjoint({"eng-000", "eng-001", "deu-002", "deu-000"})
