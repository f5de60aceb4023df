"""Tests for speechkit/data/segments.py: supervision-level cuts and previous-segment text."""

import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechkit.data.segments import annotate_previous_text, split_supervisions


def _sup(sid, rec, start, duration, text, **custom):
    return SupervisionSegment(
        sid, rec, start, duration, text=text, language="eng", custom=custom or None
    )


def _long_cut():
    """A 10 s cut with three segments, stored out of time order, the last one translated."""
    cut = dummy_cut(0, duration=10.0)
    rec = cut.recording_id
    cut.supervisions = [
        _sup("b", rec, 4.0, 2.0, "second"),
        _sup("a", rec, 1.0, 2.5, "first", translations={"deu": "erste"}),
        _sup("c", rec, 7.0, 2.0, "third", translations={"deu": "dritte"}),
    ]
    return cut


@pytest.mark.parametrize("lazy", [False, True])
def test_split_gives_one_cut_per_supervision(tmp_path, lazy):
    single = dummy_cut(1, duration=2.0, with_data=False)
    cuts = CutSet.from_cuts([_long_cut(), single])
    if lazy:
        cuts.to_file(tmp_path / "c.jsonl.gz")
        cuts = CutSet.from_file(tmp_path / "c.jsonl.gz")
    split = {c.id: c for c in split_supervisions(cuts)}
    assert sorted(split) == sorted(["a", "b", "c", single.id])
    for sid, start, duration, text in [("a", 1.0, 2.5, "first"), ("b", 4.0, 2.0, "second")]:
        cut = split[sid]
        assert (cut.start, cut.duration) == pytest.approx((start, duration))
        assert len(cut.supervisions) == 1 and cut.supervisions[0].text == text
        assert cut.supervisions[0].start == pytest.approx(0.0)
    # The preceding segment in time, not in storage order; the first segment has none.
    assert "text_prev" not in (split["a"].supervisions[0].custom or {})
    assert split["b"].supervisions[0].custom["text_prev"] == "first"
    assert split["b"].supervisions[0].custom["translations_prev"] == {"deu": "erste"}
    assert split["c"].supervisions[0].custom["text_prev"] == "second"
    assert "translations_prev" not in split["c"].supervisions[0].custom
    assert split[single.id].to_dict() == single.to_dict()  # one supervision: unchanged


def test_split_of_single_supervision_cuts_is_the_identity():
    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0) for i in range(3))
    assert split_supervisions(cuts) is cuts


def test_split_keeps_a_task_expanded_cuts_task_in_the_ids():
    cut = _long_cut()
    cut.custom = {"task": "asr"}
    ids = [c.id for c in split_supervisions(CutSet.from_cuts([cut]))]
    assert sorted(ids) == ["a__asr", "b__asr", "c__asr"]


def test_annotate_previous_text_orders_the_segments_of_each_recording():
    """Supervision-level cuts of two recordings, shuffled, one of them expanded twice."""
    first = split_supervisions(CutSet.from_cuts([_long_cut()]))
    # Strip what splitting filled in: annotation must find it across separate cuts.
    for c in first:
        c.supervisions[0].custom = {
            k: v for k, v in (c.supervisions[0].custom or {}).items() if k == "translations"
        } or None
    other = dummy_cut(5, duration=3.0)
    other.supervisions = [_sup("z", other.recording_id, 0.0, 3.0, "elsewhere")]
    by_id = {c.id: c for c in first}
    cuts = CutSet.from_cuts([by_id["c"], other, by_id["b"], by_id["a"], by_id["b"]])
    annotated = list(annotate_previous_text(cuts))
    prev = [(c.id, (c.supervisions[0].custom or {}).get("text_prev")) for c in annotated]
    assert prev == [("c", "second"), (other.id, None), ("b", "first"), ("a", None), ("b", "first")]
    assert annotated[2].supervisions[0].custom["translations_prev"] == {"deu": "erste"}


def test_annotation_keeps_existing_previous_text():
    cut = dummy_cut(0, duration=4.0)
    rec = cut.recording_id
    cut.supervisions = [
        _sup("a", rec, 0.0, 1.0, "first"),
        _sup("b", rec, 2.0, 1.0, "second", text_prev="from text.prev"),
    ]
    (annotated,) = annotate_previous_text(CutSet.from_cuts([cut]))
    assert annotated.supervisions[1].custom["text_prev"] == "from text.prev"
