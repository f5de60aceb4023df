"""Task expansion: one source cut becomes one cut per task it can train.

A cut spoken in ``src`` yields

* ``<id>__asr`` when ``src`` is in ``asr_languages``;
* ``<id>__st_<tgt>`` for every direction ``"src-tgt"`` in ``st_directions`` whose translation
  text exists in ``supervisions[0].custom["translations"][tgt]`` (cuts without it are skipped).

The new cut carries ``custom["task"]`` (``asr`` / ``st_deu`` ...); everything else is shared with
the source cut (same recording, same supervision). A cut with several supervisions is first split
into one cut per supervision (``segments.split_supervisions``), so each segment gets the tasks of
its own language and text. Expansion is lazy: it works on lazily opened manifests without loading
them into memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

from lhotse import CutSet

from speechkit.data.segments import split_supervisions

__all__ = ["cut_tasks", "expand_tasks", "parse_direction", "target_text"]


def parse_direction(direction: str) -> tuple[str, str]:
    """``"eng-deu"`` -> ``("eng", "deu")``."""
    parts = direction.split("-")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ValueError(f"ST direction {direction!r} is not of the form 'src-tgt', e.g. 'eng-deu'")
    return parts[0], parts[1]


def _translations(cut) -> dict:
    sup = cut.supervisions[0]
    return (sup.custom or {}).get("translations") or {}


def cut_tasks(cut, asr_languages: Sequence[str], st_directions: Sequence[str]) -> list[str]:
    """The tasks one (unexpanded) cut can train, in a stable order: ``asr`` first."""
    if not cut.supervisions:
        return []
    lang = cut.supervisions[0].language
    tasks = ["asr"] if lang in asr_languages else []
    translations = _translations(cut)
    for direction in st_directions:
        src, tgt = parse_direction(direction)
        text = translations.get(tgt)
        if src == lang and isinstance(text, str) and text.strip():
            tasks.append(f"st_{tgt}")
    return tasks


def target_text(cut, task: str | None = None) -> str:
    """The decoder text of ``task`` (default: an expanded cut's ``custom["task"]``, else asr):
    the transcript (asr) or the translation (st_<tgt>)."""
    task = task or (cut.custom or {}).get("task", "asr")
    sup = cut.supervisions[0]
    if task == "asr":
        return sup.text or ""
    return _translations(cut).get(task[len("st_") :], "") or ""


def _with_task(cut, task: str):
    custom = dict(cut.custom or {})
    custom["task"] = task
    # Cuts are dataclasses; replace() keeps recording and supervisions shared (no audio copy).
    return dataclasses.replace(cut, id=f"{cut.id}__{task}", custom=custom)


def _expand(cuts: Iterable, asr_languages: Sequence[str], st_directions: Sequence[str]) -> Iterator:
    for cut in cuts:
        for task in cut_tasks(cut, asr_languages, st_directions):
            yield _with_task(cut, task)


class _Expanded:
    """A re-iterable view (each iteration re-reads the source), so lazy CutSets stay lazy."""

    def __init__(self, cuts, asr_languages, st_directions):
        self.cuts, self.asr, self.st = cuts, list(asr_languages), list(st_directions)

    def __iter__(self) -> Iterator:
        return _expand(self.cuts, self.asr, self.st)


def expand_tasks(
    cuts: CutSet, asr_languages: Sequence[str], st_directions: Sequence[str]
) -> CutSet:
    """One cut per (supervision, task); see the module docstring. Lazy if ``cuts`` is lazy."""
    for direction in st_directions:
        parse_direction(direction)  # fail early on a malformed config value
    cuts = split_supervisions(cuts)
    if cuts.is_lazy:
        return CutSet(_Expanded(cuts, asr_languages, st_directions))
    return CutSet.from_cuts(_expand(cuts, asr_languages, st_directions))
