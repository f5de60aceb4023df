"""Synthetic weak transcripts: gold text corrupted at a controlled word error rate.

Each reference word is substituted (by another word of the same language's vocabulary) with
probability ``rate * p_sub``, deleted with probability ``rate * p_del``, and followed by an
inserted vocabulary word with probability ``rate * p_ins``, so the expected errors per
reference word are ``rate`` (``p_sub + p_del + p_ins = 1``). The proportions are meant to be
those a real recogniser shows on the corpus (:func:`proportions_of`), so that synthetic and real
weak transcripts differ in their rate only. The word error rate achieved (scored like any
hypothesis, which can find a cheaper alignment than the edits made) is measured and reported
beside the target: ``ErrorRate`` from :func:`corrupt_cuts`.

Randomness: one ``random.Random`` per cut, seeded by ``(seed, cut id)``, so a cut's corruption
does not depend on which other cuts are in the manifest or in what order.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping

from speechkit.data.weak import WEAK_HYPS, WEAK_SOURCE, WEAK_TEXT, with_sup_custom
from speechkit.metrics import ErrorRate

__all__ = ["Corruption", "corrupt_cuts", "corrupt_words", "proportions_of"]


@dataclasses.dataclass(frozen=True)
class Corruption:
    """Target word error rate (a fraction, e.g. 0.25) and the shares of substitutions,
    deletions and insertions among the errors (normalised to sum to 1)."""

    rate: float
    p_sub: float = 0.6
    p_del: float = 0.2
    p_ins: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"corruption rate must lie in [0, 1], got {self.rate}")
        shares = (self.p_sub, self.p_del, self.p_ins)
        if min(shares) < 0 or sum(shares) <= 0:
            raise ValueError(f"error shares must be >= 0 with a positive sum, got {shares}")
        total = sum(shares)
        object.__setattr__(self, "p_sub", self.p_sub / total)
        object.__setattr__(self, "p_del", self.p_del / total)
        object.__setattr__(self, "p_ins", self.p_ins / total)

    @property
    def source(self) -> str:
        """The ``weak_source`` name of transcripts corrupted so: ``synthetic-wer25``."""
        return f"synthetic-wer{round(100 * self.rate)}"


def proportions_of(error: ErrorRate | Mapping) -> tuple[float, float, float]:
    """(p_sub, p_del, p_ins) of a measured error rate (an ``ErrorRate`` or its ``as_dict``)."""
    e = error.as_dict() if isinstance(error, ErrorRate) else error
    s, d, i = e["substitutions"], e["deletions"], e["insertions"]
    total = s + d + i
    if total == 0:
        raise ValueError("a recogniser without errors has no error proportions")
    return s / total, d / total, i / total


def corrupt_words(
    words: list[str], vocab: list[str], corruption: Corruption, rng: random.Random
) -> list[str]:
    """One corrupted copy of ``words``; substitutes and insertions are drawn from ``vocab``
    (a substitute differs from the word it replaces whenever ``vocab`` allows)."""
    c = corruption
    out = []
    for word in words:
        u = rng.random()
        if u < c.rate * c.p_sub:
            choices = [v for v in vocab if v.lower() != word.lower()] or vocab
            out.append(rng.choice(choices))
        elif u < c.rate * (c.p_sub + c.p_del):
            pass  # deleted
        else:
            out.append(word)
        if rng.random() < c.rate * c.p_ins:
            out.append(rng.choice(vocab))
    return out


def corrupt_cuts(
    cuts: Iterable,
    vocabularies: Mapping[str, Iterable[str]],
    corruption: Corruption,
    seed: int = 0,
) -> list:
    """Cuts whose ``weak_text`` is their gold text corrupted (source ``corruption.source``;
    ``weak_hyps`` then holds that text alone). ``vocabularies``: ``{language: words}``, the
    words substitutions and insertions draw from (e.g. ``weak.language_vocabularies``)."""
    vocab = {lang: sorted(words) for lang, words in vocabularies.items()}
    out = []
    for cut in cuts:
        sup = cut.supervisions[0]
        words = (sup.text or "").split()
        lang_vocab = vocab.get(sup.language) or sorted({w.lower() for w in words}) or ["a"]
        rng = random.Random(f"corrupt/{seed}/{corruption.rate}/{cut.id}")
        text = " ".join(corrupt_words(words, lang_vocab, corruption, rng))
        source = corruption.source
        out.append(
            with_sup_custom(
                cut, **{WEAK_TEXT: text, WEAK_SOURCE: source, WEAK_HYPS: {source: text}}
            )
        )
    return out
