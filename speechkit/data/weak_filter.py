"""Filtering weak (audio, transcript) pairs before pretraining: keep the ones that look right.

Two scores, higher = more trustworthy:

* :func:`ctc_alignment_score`: how well the weak transcript fits the audio under a CTC model
  (a speechkit S2T model's CTC head): the log-probability of the best CTC alignment of the
  transcript's tokens (``torchaudio.functional.forced_align``) minus that of the best
  unconstrained path (the frame-wise maxima), per frame. A transcript with missing, extra or
  wrong words forces frames onto unlikely tokens and scores lower; subtracting the free path
  keeps noisy audio, where every token is uncertain, from scoring low for its noise alone.
* :func:`agreement_score`: minus the WER between two recognisers' hypotheses for the cut
  (``weak_hyps``): where independent recognisers agree, both are more likely right.

:func:`keep_best` keeps the best-scoring fraction in every language (so that no language loses
all its weak data because its recogniser is worse). The models are run by
``speechkit.bin.weak_filter``; this module sees tensors and texts only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import torch
from torchaudio.functional import forced_align

from speechkit.metrics import wer

__all__ = ["agreement_score", "ctc_alignment_score", "keep_best"]


def _min_frames(tokens: Sequence[int]) -> int:
    """Frames a CTC path needs: one per token, plus a blank between equal neighbours."""
    return len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))


def ctc_alignment_score(log_probs: torch.Tensor, tokens: Sequence[int], blank: int = 0) -> float:
    """Per-frame log-probability of the best CTC alignment of ``tokens`` minus that of the best
    unconstrained path: ``<= 0``, and 0 when the transcript is what the model would say.

    ``log_probs``: (T, V) log-softmax CTC outputs of one utterance (valid frames only).
    ``tokens``: the transcript's token ids (no blank). Returns ``-inf`` when the transcript is
    empty or cannot be aligned (more tokens than the frames allow).
    """
    if not tokens or _min_frames(tokens) > log_probs.shape[0]:
        return -math.inf
    log_probs = log_probs.float().cpu()
    targets = torch.tensor([list(tokens)], dtype=torch.int32)
    _, frame_scores = forced_align(log_probs[None], targets, blank=blank)
    free = log_probs.max(dim=-1).values.sum()
    return float((frame_scores.sum() - free) / log_probs.shape[0])


def agreement_score(hyps: Mapping[str, str], sources: Sequence[str]) -> float:
    """Minus the WER (in %) of ``hyps[sources[1]]`` against ``hyps[sources[0]]``; ``-inf`` when
    either is missing or the first is empty."""
    a, b = (hyps.get(s) for s in sources[:2])
    if not isinstance(a, str) or not isinstance(b, str) or not a.strip():
        return -math.inf
    return -wer([a], [b]).rate


def keep_best(
    scores: Mapping[str, float], languages: Mapping[str, str], fraction: float
) -> set[str]:
    """Ids of the best ``fraction`` of cuts by score in each language (rounded up, at least
    one per language with a finite score); cuts scoring ``-inf`` are never kept.

    ``scores``: ``{cut_id: score}``; ``languages``: ``{cut_id: language}``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"keep fraction must lie in (0, 1], got {fraction}")
    by_lang: dict[str, list[str]] = defaultdict(list)
    for cut_id in scores:
        by_lang[languages[cut_id]].append(cut_id)
    kept: set[str] = set()
    for ids in by_lang.values():
        n = max(1, math.ceil(fraction * len(ids)))
        best = sorted(ids, key=lambda i: (-scores[i], i))[:n]
        kept.update(i for i in best if scores[i] > -math.inf)
    return kept
