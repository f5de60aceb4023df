"""Weak transcripts: cheap, inaccurate text for audio, kept beside the gold text of a cut.

A weak transcript is an ordinary lhotse supervision field, so every recipe can train on gold or
weak text per cut (``DataConfig.text_field``)::

    sup.text                    the gold transcript (the reference; unchanged)
    sup.custom["weak_text"]     the weak transcript trained on when text_field is weak_text
    sup.custom["weak_source"]   where it came from: "whisper-tiny.en", "s2t-seed", "synthetic-wer25"
    sup.custom["weak_hyps"]     {source: text}: every weak transcript attached, for agreement

The sources are real recognisers' outputs (``speechkit decode`` / ``speechkit transcribe``
hypotheses, read by :func:`read_hypotheses`) or gold text corrupted at a chosen word error rate
(``corrupt.py``). Under ``text_field: weak_text`` a cut with a weak transcript is weakly
supervised: its transcript is the weak text and it trains no translation (there is none of
weakly transcribed speech); a cut without one is a gold cut (see ``dataset.py``).

Bad weak transcripts (:func:`weak_problem`) are counted, reported and dropped, never trained on
silently: empty ones, ones absurdly long for their audio (more words per second than speech
has), and ones in another language than the cut's (by word coverage of per-language
vocabularies, :func:`language_vocabularies`).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from lhotse import CutSet

from speechkit.metrics import normalize_text, wer

__all__ = [
    "WEAK_HYPS",
    "WEAK_SOURCE",
    "WEAK_TEXT",
    "WeakChecks",
    "admitted_sources",
    "attach_weak",
    "cut_texts",
    "drop_bad_weak",
    "has_weak",
    "language_vocabularies",
    "read_hypotheses",
    "read_manifest",
    "strip_weak",
    "transcript",
    "weak_error_rates",
    "weak_problem",
    "with_sup_custom",
]

WEAK_TEXT = "weak_text"
WEAK_SOURCE = "weak_source"
WEAK_HYPS = "weak_hyps"
_WEAK_KEYS = (WEAK_TEXT, WEAK_SOURCE, WEAK_HYPS)


# ---- the field -------------------------------------------------------------------------------
def has_weak(sup) -> bool:
    """Whether the supervision carries a weak transcript (a string, possibly empty)."""
    return isinstance((sup.custom or {}).get(WEAK_TEXT), str)


def transcript(sup, text_field: str = "text") -> str:
    """The transcript a cut trains on: ``sup.text``, or with ``text_field == "weak_text"`` its
    weak transcript where it has one (else its gold text: a gold cut in a mixed manifest)."""
    if text_field == WEAK_TEXT and has_weak(sup):
        return sup.custom[WEAK_TEXT]
    if text_field not in ("text", WEAK_TEXT):
        raise ValueError(f"text_field must be 'text' or '{WEAK_TEXT}', got {text_field!r}")
    return sup.text or ""


def with_sup_custom(cut, **custom_updates):
    """A copy of ``cut`` whose first supervision's ``custom`` is updated (None deletes a key)."""
    sup = cut.supervisions[0]
    custom = dict(sup.custom or {})
    for key, value in custom_updates.items():
        if value is None:
            custom.pop(key, None)
        else:
            custom[key] = value
    new_sup = dataclasses.replace(sup, custom=custom or None)
    return dataclasses.replace(cut, supervisions=[new_sup, *cut.supervisions[1:]])


def attach_weak(
    cuts: Iterable,
    hyps: Mapping[str, Mapping[str, str]],
    admitted: Mapping[str, Iterable[str]] | None = None,
) -> tuple[list, Counter]:
    """Attaches weak transcripts from several sources.

    ``hyps``: ``{source: {cut_id: text}}``, in order of preference: a cut's ``weak_text`` comes
    from the first source that has a hypothesis for it, and every source's text goes into
    ``weak_hyps``. ``admitted``: ``{source: languages}`` (:func:`admitted_sources`); when given,
    a source serves only cuts of its languages, and a cut that only rejected sources cover gets
    ``weak_hyps`` but no ``weak_text`` (:func:`weak_problem` then calls it
    ``source_rejected``). Cuts no source covers are returned unchanged. Returns the cuts and how
    many got their weak text from each source (``"none"``: uncovered, ``"rejected"``: covered
    by rejected sources only).
    """
    allowed = None if admitted is None else {s: set(langs) for s, langs in admitted.items()}
    out, chosen = [], Counter()
    for cut in cuts:
        found = {src: h[cut.id] for src, h in hyps.items() if cut.id in h}
        if not found or not cut.supervisions:
            chosen["none"] += 1
            out.append(cut)
            continue
        lang = cut.supervisions[0].language
        usable = [s for s in found if allowed is None or lang in allowed.get(s, ())]
        if not usable:
            chosen["rejected"] += 1
            out.append(with_sup_custom(cut, **{WEAK_HYPS: found}))
            continue
        source = usable[0]
        chosen[source] += 1
        out.append(
            with_sup_custom(
                cut, **{WEAK_TEXT: found[source], WEAK_SOURCE: source, WEAK_HYPS: found}
            )
        )
    return out, chosen


def admitted_sources(
    dev_rates: Mapping[str, Mapping[str, Mapping]], max_wer: float
) -> dict[str, list[str]]:
    """Per source, the languages in which its WER on a gold dev set is at most ``max_wer`` (%).

    ``dev_rates``: ``{source: {language: {"rate": WER %, ...}}}``, :func:`weak_error_rates` of
    the dev cuts with that source's hypotheses attached. A language a source was not measured
    in is not admitted: a recogniser of unknown quality does not supply training text.
    """
    return {
        src: sorted(lg for lg, e in rates.items() if lg != "all" and e["rate"] <= max_wer)
        for src, rates in dev_rates.items()
    }


def strip_weak(cut):
    """The cut without weak transcripts (it becomes a gold cut under any ``text_field``)."""
    if not cut.supervisions:
        return cut
    return with_sup_custom(cut, **dict.fromkeys(_WEAK_KEYS))


def read_manifest(path: str | Path) -> list:
    """The cuts of a manifest as a list; ``[]`` for an empty one (lhotse reads that as None)."""
    return list(CutSet.from_file(path) or [])


# ---- reading hypotheses ----------------------------------------------------------------------
def _read_lines(path: Path, out: dict[str, str]) -> None:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        # transcribe prints "id<TAB>text"; decode writes "id text" (Kaldi style).
        key, _, text = line.partition("\t") if "\t" in line else line.strip().partition(" ")
        key = key.strip()
        if key in out:
            raise ValueError(f"{path}:{n}: a second hypothesis for {key!r}")
        out[key] = text.strip()


def read_hypotheses(path: str | Path) -> dict[str, str]:
    """``{cut_id: text}`` from a recogniser's output.

    ``path`` is a file of ``id<TAB>text`` lines (``speechkit transcribe`` stdout) or
    ``id text`` lines (Kaldi ``hyp.txt``), or a ``speechkit decode`` output directory, whose
    ``asr_*/hyp.txt`` files are all read (translations are not transcripts and are ignored).
    An id listed twice is an error.
    """
    path = Path(path)
    out: dict[str, str] = {}
    if path.is_dir():
        files = sorted(path.glob("asr_*/hyp.txt"))
        if not files:
            raise FileNotFoundError(f"{path}: a decode directory without asr_*/hyp.txt")
        for f in files:
            _read_lines(f, out)
    elif path.is_file():
        _read_lines(path, out)
    else:
        raise FileNotFoundError(f"hypotheses not found: {path}")
    return out


# ---- how weak is it --------------------------------------------------------------------------
def weak_error_rates(cuts: Iterable, source: str | None = None) -> dict[str, dict]:
    """WER of the weak transcripts against the gold text, per language (``"all"``: pooled):
    ``{language: ErrorRate.as_dict() + {"utts": n}}`` (rate in %).

    ``source``: score that source's text in ``weak_hyps`` (default: ``weak_text``). Cuts
    without it are left out.
    """
    refs, hyps = defaultdict(list), defaultdict(list)
    for cut in cuts:
        sup = cut.supervisions[0] if cut.supervisions else None
        if sup is None:
            continue
        custom = sup.custom or {}
        if source is None:
            text = custom[WEAK_TEXT] if has_weak(sup) else None
        else:  # also of cuts whose source was rejected: they carry weak_hyps only
            text = custom.get(WEAK_HYPS, {}).get(source)
        if text is None:
            continue
        for key in (sup.language, "all"):
            refs[key].append(sup.text or "")
            hyps[key].append(text)
    return {
        lang: {**wer(refs[lang], hyps[lang]).as_dict(), "utts": len(refs[lang])}
        for lang in sorted(refs)
    }


# ---- bad weak transcripts --------------------------------------------------------------------
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")


def _words(text: str) -> list[str]:
    return _WORD.findall(normalize_text(text))


def language_vocabularies(texts: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """``{language: words}`` from ``(language, text)`` pairs, e.g. the gold transcripts and
    translations of the gold cuts (normalised, letters only)."""
    vocab: dict[str, set[str]] = defaultdict(set)
    for lang, text in texts:
        vocab[lang].update(_words(text))
    return dict(vocab)


def cut_texts(cuts: Iterable) -> Iterable[tuple[str, str]]:
    """``(language, text)`` of every gold transcript and translation of ``cuts``."""
    for cut in cuts:
        for sup in cut.supervisions:
            yield sup.language, sup.text or ""
            for lang, text in ((sup.custom or {}).get("translations") or {}).items():
                if isinstance(text, str):
                    yield lang, text


@dataclasses.dataclass
class WeakChecks:
    """What makes a weak transcript unusable.

    max_words_per_second, slack_words: more than ``max_words_per_second * seconds +
        slack_words`` words is absurd for speech (conversational English is about 2.5-3 words
        a second, reading aloud fast about 4); the slack spares short clips of short words, and
        what is caught is a recogniser looping or hallucinating, not fast speech.
    vocabularies: ``{language: words}`` (:func:`language_vocabularies`); a transcript whose
        words are covered better, by ``language_margin`` or more, by another language's
        vocabulary than by its cut's is in the wrong language. None: no language check.
    min_language_words: shorter transcripts are not judged for language.
    """

    max_words_per_second: float = 6.0
    slack_words: int = 2
    vocabularies: dict[str, set[str]] | None = None
    language_margin: float = 0.25
    min_language_words: int = 2


def _coverage(words: Sequence[str], vocab: set[str]) -> float:
    return sum(w in vocab for w in words) / len(words)


def weak_problem(cut, checks: WeakChecks) -> str | None:
    """Why the cut's weak transcript is unusable (``empty``, ``too_long``, ``wrong_language``,
    ``no_weak_text``; ``source_rejected``: only sources :func:`admitted_sources` rejected for
    its language transcribed it), or None when it is fine."""
    sup = cut.supervisions[0] if cut.supervisions else None
    if sup is None or not has_weak(sup):
        return "source_rejected" if WEAK_HYPS in (sup.custom or {}) else "no_weak_text"
    words = _words(sup.custom[WEAK_TEXT])
    if not words:
        return "empty"
    if len(words) > checks.max_words_per_second * cut.duration + checks.slack_words:
        return "too_long"
    vocab = checks.vocabularies
    if vocab and sup.language in vocab and len(words) >= checks.min_language_words:
        own = _coverage(words, vocab[sup.language])
        other = max(
            (_coverage(words, v) for lg, v in vocab.items() if lg != sup.language), default=0
        )
        if other >= own + checks.language_margin:
            return "wrong_language"
    return None


def drop_bad_weak(cuts: Iterable, checks: WeakChecks) -> tuple[CutSet, Counter]:
    """The cuts whose weak transcript passes :func:`weak_problem`, and the dropped ones counted
    by reason and language (``"empty/eng"``) and by reason (``"empty"``)."""
    kept, dropped = [], Counter()
    for cut in cuts:
        reason = weak_problem(cut, checks)
        if reason is None:
            kept.append(cut)
            continue
        lang = cut.supervisions[0].language if cut.supervisions else "?"
        dropped[reason] += 1
        dropped[f"{reason}/{lang}"] += 1
    return CutSet.from_cuts(kept), dropped
