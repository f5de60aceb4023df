"""Gold budgets: which cuts of a training pool keep their gold transcripts.

``select_gold(cuts, fraction, seed)`` picks, in every language, cuts in a fixed pseudo-random
order (a hash of ``seed`` and the cut id) until ``fraction`` of that language's audio seconds is
reached (at least one cut per language). The order does not depend on the fraction, so budgets
nest: the 2 % gold cuts are among the 5 % ones, and so on; and it does not depend on the other
cuts, so the same pool gives the same gold cuts whatever weak transcripts it carries.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

__all__ = ["gold_order", "select_gold"]


def _rank(seed: int, cut_id: str) -> str:
    return hashlib.sha256(f"gold/{seed}/{cut_id}".encode()).hexdigest()


def gold_order(cuts: Iterable, seed: int = 0) -> dict[str, list]:
    """``{language: cuts}``, each list in the order cuts are promoted to gold."""
    by_lang: dict[str, list] = defaultdict(list)
    for cut in cuts:
        lang = cut.supervisions[0].language if cut.supervisions else ""
        by_lang[lang].append(cut)
    return {lang: sorted(cs, key=lambda c: _rank(seed, c.id)) for lang, cs in by_lang.items()}


def select_gold(cuts: Iterable, fraction: float, seed: int = 0) -> set[str]:
    """Ids of the gold cuts: per language, the first cuts in :func:`gold_order` whose audio
    reaches ``fraction`` (0 < fraction <= 1) of the language's seconds."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"gold fraction must lie in (0, 1], got {fraction}")
    chosen: set[str] = set()
    for ordered in gold_order(cuts, seed).values():
        budget = fraction * sum(c.duration for c in ordered)
        seconds = 0.0
        for cut in ordered:
            if seconds >= budget - 1e-9 and seconds > 0:
                break
            chosen.add(cut.id)
            seconds += cut.duration
    return chosen
