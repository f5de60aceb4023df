"""Tests for speechkit/data/weak_filter.py: CTC alignment and agreement scores, keep_best."""

import math

import pytest
import torch

from speechkit.data.weak_filter import agreement_score, ctc_alignment_score, keep_best


def _peaky(path: list[int], vocab: int = 6, p: float = 0.9) -> torch.Tensor:
    """(T, V) log-probs whose frame t puts ``p`` on ``path[t]`` (0 = blank)."""
    probs = torch.full((len(path), vocab), (1 - p) / (vocab - 1))
    probs[torch.arange(len(path)), torch.tensor(path)] = p
    return probs.log()


def test_the_models_own_transcript_scores_zero_and_errors_score_lower():
    log_probs = _peaky([0, 1, 1, 0, 2, 0, 3, 3, 0, 0])  # says 1 2 3
    right = ctc_alignment_score(log_probs, [1, 2, 3])
    substituted = ctc_alignment_score(log_probs, [1, 4, 3])
    deleted = ctc_alignment_score(log_probs, [1, 3])
    inserted = ctc_alignment_score(log_probs, [1, 2, 5, 3])
    assert right == pytest.approx(0.0, abs=1e-6)
    assert max(substituted, deleted, inserted) < right
    assert ctc_alignment_score(log_probs, [1, 4, 5]) < substituted  # more errors, lower


def test_noisy_audio_does_not_score_low_for_its_noise_alone():
    clean = ctc_alignment_score(_peaky([0, 1, 0, 2, 0], p=0.95), [1, 2])
    noisy = ctc_alignment_score(_peaky([0, 1, 0, 2, 0], p=0.4), [1, 2])
    wrong_clean = ctc_alignment_score(_peaky([0, 1, 0, 2, 0], p=0.95), [1, 3])
    assert noisy == pytest.approx(clean, abs=1e-6) and wrong_clean < noisy


def test_unalignable_or_empty_transcripts_score_minus_infinity():
    log_probs = _peaky([0, 1, 0])
    assert ctc_alignment_score(log_probs, []) == -math.inf
    assert ctc_alignment_score(log_probs, [1, 2, 3, 4]) == -math.inf
    assert ctc_alignment_score(log_probs, [1, 1, 1]) == -math.inf  # repeats need blanks between
    assert ctc_alignment_score(log_probs, [1, 1]) > -math.inf


def test_agreement_score_is_minus_the_wer_between_two_sources():
    hyps = {"a": "where is the station", "b": "where is a station"}
    assert agreement_score(hyps, ["a", "b"]) == pytest.approx(-25.0)
    assert agreement_score({"a": "x"}, ["a", "b"]) == -math.inf


def test_keep_best_keeps_a_fraction_of_every_language():
    scores = {
        "e1": -0.1,
        "e2": -0.5,
        "e3": -0.2,
        "e4": -0.9,
        "d1": -3.0,
        "d2": -2.0,
        "x": -math.inf,
    }
    langs = {
        "e1": "eng",
        "e2": "eng",
        "e3": "eng",
        "e4": "eng",
        "d1": "deu",
        "d2": "deu",
        "x": "fra",
    }
    assert keep_best(scores, langs, 0.5) == {"e1", "e3", "d2"}  # fra: -inf is never kept
    assert keep_best(scores, langs, 1.0) == set(scores) - {"x"}
    with pytest.raises(ValueError):
        keep_best(scores, langs, 0.0)
