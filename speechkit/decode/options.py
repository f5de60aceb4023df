"""What one decode call is asked to do (``DecodeOptions``) and what it returns (``Hypothesis``).

Options are one frozen dataclass checked up front, so a bad value fails before any audio is read.

Scoring of a finished hypothesis with ``n`` output tokens (text tokens plus ``<eos>``; text tokens
only when ``eos_in_length`` is False, as Whisper and CTranslate2 count)::

    raw   = (1 - ctc_weight) * sum(log p_att) + ctc_weight * log p_ctc(prefix) + length_penalty * n
    score = raw / n           if length_norm
          = raw               otherwise

A ``LogitFilter`` edits the raw logits of every row before the log-softmax (so suppressed tokens
take no probability mass, as in Whisper); ``SpecialIds.suppress`` instead masks log-probabilities
after it (the S2T convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from speechkit.config import ConfigError

__all__ = ["DecodeOptions", "Hypothesis", "LogitFilter", "SpecialIds", "constrain_next_token"]


@dataclass(frozen=True)
class DecodeOptions:
    """Search settings.

    beam_size: beams per utterance; 1 with ``ctc_weight == 0`` is greedy search.
    length_norm: divide the final score by the number of output tokens (``<eos>`` included).
    length_penalty: added to the log score once per output token (> 0 favours longer outputs).
    ctc_weight: λ in ``(1 - λ) * att + λ * ctc``; > 0 turns on CTC prefix scoring.
    ctc_top_k: CTC prefix scores are computed only for the ``ctc_top_k`` best attention
        candidates of each beam ("partial scoring"); the others are dropped.
    max_len / max_len_ratio: at most ``min(max_len, int(max_len_ratio * enc_len) + 10)`` text
        tokens per utterance, ``enc_len`` in encoder frames.
    min_len: ``<eos>`` is forbidden before this many text tokens.
    nbest: hypotheses returned per utterance (at most ``beam_size``).
    eos_in_length: whether ``<eos>`` counts as an output token in the length used by
        ``length_norm`` and ``length_penalty`` (Whisper/CTranslate2 count text tokens only).
    stop: when a beam search ends an utterance. ``bound``: once ``beam_size`` hypotheses have
        ended and the best live beam cannot overtake them; an ``<eos>`` ranked before the
        ``beam_size``-th continuing candidate ends a hypothesis. ``count`` (CTranslate2 /
        faster-whisper with a length penalty): once ``beam_size`` hypotheses have ended, whatever
        their scores; only ``<eos>`` among the ``beam_size`` best candidates ends a hypothesis.
        ``espnet`` (ESPnet's ``BatchBeamSearch`` with a max length ratio): the ``beam_size`` best
        candidates over all live beams are taken; those that are ``<eos>`` end and leave the
        beam, so fewer beams live on; ``<eos>`` is always a candidate (also outside the CTC
        ``ctc_top_k``); the utterance ends once no beam is live; beams still live when the
        budget is used up end there with no ``<eos>`` score added. ``min_len`` still forbids
        ``<eos>`` (ESPnet instead drops short ended hypotheses), and ``length_norm`` counts
        output tokens, not ESPnet's prompt-inclusive sequence length.
    end_detect: with ``stop="espnet"``, also ESPnet's end detection (what it uses with
        ``maxlenratio=0``): finished once, for each of the last 3 sequence lengths, the best
        hypothesis that ended with that length scores more than 10 below the best ended one
        (lengths count the prefix and ``<eos>``, as ESPnet's do).
    ctc_prompt_offset: count the prefix tokens after its first (``<lang> <task> <notimestamps>``
        after ``<sos>``) as already emitted in the CTC prefix scorer, as ESPnet's scorer does:
        the k-th text token (0-based) may not be emitted before encoder frame ``k + P - 1`` for
        a prefix of length P. Off, CTC alignment starts at frame 0, which is exact for a CTC
        head that never emits the prompt.
    """

    beam_size: int = 5
    length_norm: bool = True
    length_penalty: float = 0.0
    ctc_weight: float = 0.0
    ctc_top_k: int = 20
    max_len_ratio: float = 1.0
    max_len: int = 200
    min_len: int = 0
    nbest: int = 1
    eos_in_length: bool = True
    stop: Literal["bound", "count", "espnet"] = "bound"
    ctc_prompt_offset: bool = False
    end_detect: bool = False

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {self.beam_size}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ConfigError(f"ctc_weight must be in [0, 1], got {self.ctc_weight}")
        if self.ctc_top_k < 2:
            raise ConfigError(f"ctc_top_k must be >= 2, got {self.ctc_top_k}")
        if self.max_len < 1:
            raise ConfigError(f"max_len must be >= 1, got {self.max_len}")
        if self.max_len_ratio <= 0:
            raise ConfigError(f"max_len_ratio must be > 0, got {self.max_len_ratio}")
        if not 0 <= self.min_len <= self.max_len:
            raise ConfigError(f"min_len must be in [0, max_len={self.max_len}], got {self.min_len}")
        if not 1 <= self.nbest <= self.beam_size:
            raise ConfigError(f"nbest must be in [1, beam_size={self.beam_size}], got {self.nbest}")
        if self.stop not in ("bound", "count", "espnet"):
            raise ConfigError(f"stop must be 'bound', 'count' or 'espnet', got {self.stop!r}")

        if self.end_detect and self.stop != "espnet":
            raise ConfigError("end_detect is ESPnet's rule: it needs stop='espnet'")

    def max_tokens(self, enc_len: int) -> int:
        """The text-token budget for an utterance of ``enc_len`` encoder frames."""
        return max(1, min(self.max_len, int(self.max_len_ratio * enc_len) + 10))

    def final_score(self, raw_logp: float, num_tokens: int) -> float:
        """Applies the length penalty and normalisation to a summed log score; ``num_tokens``
        counts the output tokens including ``<eos>`` if the hypothesis ended with one."""
        n = max(1, num_tokens - (0 if self.eos_in_length else 1))
        raw = raw_logp + self.length_penalty * n
        return raw / n if self.length_norm else raw


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the search must know: ``eos`` ends a hypothesis, ``blank`` is the CTC blank and
    ``suppress`` may never be emitted (e.g. ``<sos>``, language and task tokens)."""

    eos: int
    blank: int = 0
    suppress: tuple[int, ...] = ()

    @classmethod
    def from_tokenizer(cls, tok: Any) -> SpecialIds:
        """Every special token except ``<eos>`` is suppressed: ``tok.suppress_ids`` where the
        tokenizer lists them (Whisper's specials follow the text pieces), else the ids below
        ``tok.num_special`` (speechkit's tokenizer puts its specials first)."""
        if hasattr(tok, "suppress_ids"):
            suppress = tuple(int(i) for i in tok.suppress_ids)
        else:
            suppress = tuple(i for i in range(tok.num_special) if i != tok.eos_id)
        return cls(eos=tok.eos_id, blank=tok.blank_id, suppress=suppress)


class LogitFilter(Protocol):
    """Edits next-token logits before the log-softmax (e.g. Whisper's suppression rules).

    logits: (N, V) float32 raw scores of N rows; tokens: (N, t) int64 tokens each row has
    generated so far (prefix excluded); step: t. Returns (N, V) logits, -inf = forbidden.
    """

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor: ...


@dataclass
class Hypothesis:
    """One decoded output: ``tokens`` without the prefix and without ``<eos>``.

    score: the final (length-penalised, maybe normalised) score used for ranking.
    att_logp / ctc_logp: summed attention log-probability and CTC prefix log-probability
        (0.0 when CTC scoring is off), both including ``<eos>`` when the hypothesis ended.
    """

    tokens: list[int]
    score: float
    att_logp: float = 0.0
    ctc_logp: float = 0.0
    extra: dict = field(default_factory=dict)


def constrain_next_token(
    logp: torch.Tensor,
    step: int,
    max_tokens: torch.Tensor,
    options: DecodeOptions,
    ids: SpecialIds,
) -> torch.Tensor:
    """Applies the emission rules shared by all strategies to next-token log-probs.

    logp: (N, V) log-probabilities after ``step`` text tokens; max_tokens: (N,) budgets.
    Suppressed ids never appear; ``<eos>`` is forbidden before ``min_len`` tokens and is the only
    choice once a row has used its budget (the budget wins over ``min_len``).
    """
    logp = logp.clone()
    if ids.suppress:
        logp[:, list(ids.suppress)] = float("-inf")
    if step < options.min_len:
        logp[:, ids.eos] = float("-inf")
    forced = step >= max_tokens  # (N,)
    if bool(forced.any()):
        eos_logp = logp[:, ids.eos].clone()
        logp[forced] = float("-inf")
        # A forced end keeps the model's own eos log-prob (0 if it was masked) for scoring.
        logp[forced, ids.eos] = torch.nan_to_num(eos_logp[forced], neginf=0.0)
    return logp
