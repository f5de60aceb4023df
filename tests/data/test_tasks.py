"""Tests for speechkit/data/tasks.py."""

import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechkit.data.tasks import expand_tasks, parse_direction, target_text


def _cut(i, lang, translations):
    cut = dummy_cut(i, duration=1.0)
    cut.custom = {"event": "clean"}
    cut.supervisions = [
        SupervisionSegment(
            f"s{i}",
            cut.recording_id,
            0,
            1.0,
            text=f"text {i}",
            language=lang,
            custom={"translations": translations},
        )
    ]
    return cut


CUTS = [
    _cut(0, "eng", {"deu": "text null", "spa": "texto cero"}),
    _cut(1, "deu", {"eng": "text one"}),
    _cut(2, "fra", {}),  # no translation, and fra not in asr_languages below
]


def test_expand_ids_tasks_and_texts():
    out = expand_tasks(CutSet.from_cuts(CUTS), ["eng", "deu"], ["eng-deu", "eng-fra", "deu-eng"])
    got = {c.id: (c.custom["task"], target_text(c)) for c in out}
    assert got == {
        f"{CUTS[0].id}__asr": ("asr", "text 0"),
        f"{CUTS[0].id}__st_deu": ("st_deu", "text null"),  # eng-spa not requested
        f"{CUTS[1].id}__asr": ("asr", "text 1"),
        f"{CUTS[1].id}__st_eng": ("st_eng", "text one"),
    }
    expanded = next(iter(out))
    assert expanded.custom["event"] == "clean" and expanded.recording is CUTS[0].recording
    assert "task" not in CUTS[0].custom  # the source cut is not modified


def test_lazy_expansion(tmp_path):
    path = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(CUTS).to_file(path)
    lazy = CutSet.from_file(path)
    out = expand_tasks(lazy, ["eng"], ["eng-spa"])
    assert out.is_lazy
    ids = [c.id for c in out]
    assert ids == [f"{CUTS[0].id}__asr", f"{CUTS[0].id}__st_spa"]
    assert [c.id for c in out] == ids  # re-iterable


def test_bad_direction():
    with pytest.raises(ValueError, match="src-tgt"):
        parse_direction("eng_deu")
    with pytest.raises(ValueError, match="src-tgt"):
        expand_tasks(CutSet.from_cuts(CUTS), ["eng"], ["eng-eng"])


def test_each_supervision_of_a_cut_gets_its_own_tasks():
    """A cut of two segments in different languages: each is a cut with its own tasks."""
    cut = dummy_cut(7, duration=4.0)
    rec = cut.recording_id
    cut.supervisions = [
        SupervisionSegment("en", rec, 0.0, 1.5, text="hello", language="eng",
                           custom={"translations": {"deu": "hallo"}}),
        SupervisionSegment("de", rec, 2.0, 1.5, text="guten tag", language="deu"),
    ]  # fmt: skip
    out = expand_tasks(CutSet.from_cuts([cut]), ["eng", "deu"], ["eng-deu"])
    got = {c.id: (c.start, len(c.supervisions), target_text(c)) for c in out}
    assert got == {
        "en__asr": (0.0, 1, "hello"),
        "en__st_deu": (0.0, 1, "hallo"),
        "de__asr": (2.0, 1, "guten tag"),
    }
