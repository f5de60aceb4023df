"""Scoring: a documented text normaliser, WER/CER (jiwer) and BLEU/chrF (sacrebleu).

ASR is scored on *normalised* text (see :func:`normalize_text`), so casing and punctuation do not
count as errors. Translation is scored twice: as is (cased, with punctuation, sacrebleu's default
13a tokenisation), which is the number to compare with published results, and lower-cased without
punctuation, which isolates word choice from formatting.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import jiwer
import sacrebleu

__all__ = [
    "ErrorRate",
    "TranslationScore",
    "bleu",
    "cer",
    "chrf",
    "normalize_text",
    "wer",
]

# Apostrophe-like characters that NFKC leaves alone; mapped to "'" so "don’t" == "don't".
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_KEEP_INSIDE_WORDS = "'-"
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalises text for ASR scoring.

    1. Unicode NFKC (compatibility forms folded: full-width letters, ligatures, "ﬁ" -> "fi");
    2. lower-case (``str.casefold``, so "ß" -> "ss");
    3. punctuation (Unicode categories P*) becomes a space, except apostrophes and hyphens
       between two letters or digits ("don't", "e-mail" stay; "'quoted'" and "a - b" lose them);
    4. whitespace runs collapse to one space, ends stripped.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    chars = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch).startswith("P"):
            inside = (
                ch in _KEEP_INSIDE_WORDS
                and 0 < i < len(text) - 1
                and text[i - 1].isalnum()
                and text[i + 1].isalnum()
            )
            chars.append(ch if inside else " ")
        else:
            chars.append(ch)
    return _SPACES.sub(" ", "".join(chars)).strip()


@dataclass
class ErrorRate:
    """Edit-distance counts over a corpus; ``rate`` = 100 * errors / ref_units (in percent).

    ref_units are words (WER) or characters, spaces included (CER).
    """

    errors: int
    ref_units: int
    rate: float
    substitutions: int
    deletions: int
    insertions: int

    def as_dict(self) -> dict:
        return asdict(self)


def _check(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")


def _error_rate(refs: Sequence[str], hyps: Sequence[str], chars: bool) -> ErrorRate:
    _check(refs, hyps)
    refs = [normalize_text(r) for r in refs]
    hyps = [normalize_text(h) for h in hyps]
    # jiwer rejects empty references; their hypothesis units are all insertions.
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    extra_ins = sum(len(h) if chars else len(h.split()) for r, h in zip(refs, hyps) if not r)
    s = d = i = n = 0
    if pairs:
        process = jiwer.process_characters if chars else jiwer.process_words
        out = process([r for r, _ in pairs], [h for _, h in pairs])
        s, d, i = out.substitutions, out.deletions, out.insertions
        n = out.hits + s + d
    i += extra_ins
    errors = s + d + i
    rate = 100.0 * errors / n if n else (0.0 if errors == 0 else float("inf"))
    return ErrorRate(errors, n, rate, s, d, i)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Corpus word error rate on normalised text (see :func:`normalize_text`)."""
    return _error_rate(refs, hyps, chars=False)


def cer(refs: Sequence[str], hyps: Sequence[str]) -> ErrorRate:
    """Corpus character error rate on normalised text; spaces count as characters."""
    return _error_rate(refs, hyps, chars=True)


@dataclass
class TranslationScore:
    """A corpus BLEU or chrF score both ways (0-100).

    cased: cased text with punctuation, sacrebleu defaults (13a tokenisation for BLEU).
    lc_nopunct: both sides passed through :func:`normalize_text` first.
    signature: sacrebleu's signature of the cased metric, for reporting.
    """

    cased: float
    lc_nopunct: float
    signature: str

    def as_dict(self) -> dict:
        return asdict(self)


def _both_ways(metric, refs: Sequence[str], hyps: Sequence[str]) -> TranslationScore:
    _check(refs, hyps)
    cased = metric.corpus_score(list(hyps), [list(refs)])
    norm = metric.corpus_score(
        [normalize_text(h) for h in hyps], [[normalize_text(r) for r in refs]]
    )
    return TranslationScore(float(cased.score), float(norm.score), str(metric.get_signature()))


def bleu(refs: Sequence[str], hyps: Sequence[str]) -> TranslationScore:
    """Corpus BLEU (sacrebleu, one reference per segment)."""
    return _both_ways(sacrebleu.metrics.BLEU(), refs, hyps)


def chrf(refs: Sequence[str], hyps: Sequence[str]) -> TranslationScore:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2)."""
    return _both_ways(sacrebleu.metrics.CHRF(), refs, hyps)
