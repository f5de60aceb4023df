"""Decoding strategies: greedy search, beam search, joint CTC prefix scoring.

Also here: ``longform`` (audio of any length, window by window, for Whisper and OWSM models) and
``whisper`` (Whisper's prompt, token rules and segments, as faster-whisper applies them).

Typical use::

    opts = DecodeOptions(beam_size=5, ctc_weight=0.3)
    nbest = decode(model, feats, feat_lens, prefix, opts, SpecialIds.from_tokenizer(tok))
    text = tok.decode(nbest[0][0].tokens)
"""

from __future__ import annotations

import torch

from speechkit.decode.beam_search import BeamSearch, beam_search
from speechkit.decode.ctc_prefix import CTCPrefixScorer, CTCState
from speechkit.decode.greedy import greedy_search
from speechkit.decode.options import DecodeOptions, Hypothesis, LogitFilter, SpecialIds

__all__ = [
    "BeamSearch",
    "CTCPrefixScorer",
    "CTCState",
    "DecodeOptions",
    "Hypothesis",
    "SpecialIds",
    "beam_search",
    "decode",
    "greedy_search",
    "prefix_tensor",
]


def prefix_tensor(prefixes: list[list[int]], device: torch.device | str = "cpu") -> torch.Tensor:
    """Stacks per-utterance start sequences into (B, P) int64; they must have equal length
    (the decoder has no padding mask on its own inputs, so batch prompts of equal length)."""
    lengths = {len(p) for p in prefixes}
    if len(lengths) != 1:
        raise ValueError(f"prefixes in one batch must have equal length, got {sorted(lengths)}")
    return torch.tensor(prefixes, dtype=torch.long, device=device)


@torch.inference_mode()
def decode(
    model: torch.nn.Module,
    feats: torch.Tensor,
    feat_lens: torch.Tensor,
    prefix: torch.Tensor,
    options: DecodeOptions,
    ids: SpecialIds,
    logit_filter: LogitFilter | None = None,
) -> list[list[Hypothesis]]:
    """Encodes a batch and decodes it: greedy when ``beam_size == 1`` and no CTC weight, else beam.

    feats: (B, T, F) log-mel frames; feat_lens: (B,); prefix: (B, P) start tokens.
    logit_filter: edits each step's logits before the log-softmax (e.g. timestamp rules).
    Returns per utterance the n-best list, best first.
    """
    enc, enc_lens = model.encode(feats, feat_lens)
    if options.beam_size == 1 and options.ctc_weight == 0:
        return greedy_search(model, enc, enc_lens, prefix, options, ids, logit_filter)
    return beam_search(model, enc, enc_lens, prefix, options, ids, logit_filter)
