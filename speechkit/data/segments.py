"""Supervision-level cuts: one supervision per training cut, and each segment's preceding text.

The dataset reads a cut's text from ``supervisions[0]`` and its audio from the whole cut, so a cut
with several supervisions (a long recording with its segments, as many lhotse recipes make)
would train all of its audio against the first segment's text. :func:`split_supervisions` turns
such a cut into one cut per supervision, with lhotse's ``trim_to_supervisions``: each new cut
spans exactly its supervision and carries only it (``keep_overlapping=False``; where speakers
overlap, the other speaker's audio stays in the cut, but not their text). Cuts with one or no
supervision pass through unchanged, so the function is cheap to call on any manifest, lazy or
not, and calling it twice changes nothing.

Previous-text prompts (``data.prompt_prob``) are the text of the *preceding segment of the same
recording*, as Whisper and OWSM train them, stored on each supervision (the convention of
``kaldi.py``, which reads OWSM's ``text.prev`` into it)::

    supervision.custom["text_prev"]          the preceding segment's transcript
    supervision.custom["translations_prev"]  {lang: the preceding segment's translation}

A segment with no preceding one (the first of its recording) has neither key and is trained
without a prompt. :func:`split_supervisions` fills them in from the cut's own earlier
supervisions; :func:`annotate_previous_text` does it over a whole manifest, for corpora whose
segments of one recording are already separate cuts. Values already present are kept.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator

from lhotse import CutSet
from lhotse.utils import fastcopy

__all__ = ["annotate_previous_text", "split_supervisions"]

logger = logging.getLogger(__name__)


def _with_previous(sup, prev):
    """``sup`` with ``text_prev`` / ``translations_prev`` from ``prev`` (where it lacks them)."""
    custom = dict(sup.custom or {})
    if prev.text and "text_prev" not in custom:
        custom["text_prev"] = prev.text
    translations = (prev.custom or {}).get("translations") or {}
    if translations and "translations_prev" not in custom:
        custom["translations_prev"] = dict(translations)
    if custom == (sup.custom or {}):
        return sup
    return fastcopy(sup, custom=custom)


def _split(cut) -> list:
    """One cut per supervision of ``cut``, each knowing its predecessor's text."""
    task = (cut.custom or {}).get("task")
    ordered = sorted(cut.supervisions, key=lambda s: (s.start, s.id))
    previous = {s.id: prev for prev, s in zip(ordered, ordered[1:])}
    pieces = []
    for piece in cut.trim_to_supervisions(keep_overlapping=False):
        sup = piece.supervisions[0]
        if sup.id in previous:
            sup = _with_previous(sup, previous[sup.id])
        # trim_to_supervisions names a piece after its supervision; a task-expanded cut's
        # pieces keep the task suffix, so that the pieces of its sibling tasks stay distinct.
        piece_id = f"{piece.id}__{task}" if task else piece.id
        pieces.append(fastcopy(piece, id=piece_id, supervisions=[sup]))
    return pieces


def _split_all(cuts: Iterable) -> Iterator:
    for cut in cuts:
        if len(cut.supervisions) <= 1:
            yield cut
        else:
            yield from _split(cut)


class _Split:
    """A re-iterable view (each iteration re-reads the source), so lazy CutSets stay lazy."""

    def __init__(self, cuts: Iterable) -> None:
        self.cuts = cuts

    def __iter__(self) -> Iterator:
        return _split_all(self.cuts)


def split_supervisions(cuts: CutSet) -> CutSet:
    """``cuts`` with every cut of several supervisions split into one cut per supervision
    (see the module docstring); lazy if ``cuts`` is lazy, else eager (``cuts`` itself when
    no cut needs splitting). A lazy source that declares ``supervision_level = True`` (a Shar
    export, ``shar.py``) is returned as it is."""
    if getattr(cuts.data, "supervision_level", False):
        return cuts
    if cuts.is_lazy:
        return CutSet(_Split(cuts))
    if all(len(c.supervisions) <= 1 for c in cuts):
        return cuts
    split = CutSet.from_cuts(_split_all(cuts))
    logger.info("split %d cuts into %d supervision-level cuts", len(cuts), len(split))
    return split


def annotate_previous_text(cuts: CutSet) -> CutSet:
    """``cuts`` (eager: every segment of a recording must be seen) with each supervision's
    ``text_prev`` / ``translations_prev`` set from the preceding supervision of the same
    recording, by start time in the recording. A supervision shared by several cuts (task
    expansion) counts once."""
    by_recording: dict[str, dict[str, tuple[float, object]]] = defaultdict(dict)
    for cut in cuts:
        for sup in cut.supervisions:
            # Supervision times are relative to the cut; the recording's order needs absolute.
            by_recording[cut.recording_id].setdefault(sup.id, (cut.start + sup.start, sup))
    previous: dict[str, object] = {}
    for sups in by_recording.values():
        ordered = sorted(sups.items(), key=lambda kv: (kv[1][0], kv[0]))
        for (_, (_, prev)), (sup_id, _) in zip(ordered, ordered[1:]):
            previous[sup_id] = prev
    annotated = []
    for cut in cuts:
        sups = [
            _with_previous(s, previous[s.id]) if s.id in previous else s for s in cut.supervisions
        ]
        annotated.append(fastcopy(cut, supervisions=sups))
    return CutSet.from_cuts(annotated)
