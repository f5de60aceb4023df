"""Pieces every attention encoder-decoder of speechkit shares: the decoding API, the incremental
decoding cache and the token-level training loss. ``models/s2t.py`` and ``models/whisper.py`` import them; a new
decoder family should too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechkit.nn.attention import set_attention_backend

__all__ = [
    "IGNORE_ID",
    "DecoderCache",
    "EncoderDecoder",
    "PatternDecoder",
    "intra_op_threads",
    "target_lengths",
    "token_loss",
]

IGNORE_ID = -100  # ys_out positions that carry no loss (padding, prompt)


@dataclass
class DecoderCache:
    """Decoder state for incremental decoding; rows are hypotheses (B = batch x beam).

    ``cross``: per layer, cross-attention (K, V), each (U, H, T', Dh); computed once.
    ``cross_mask``: (U, 1, 1, T') bool, True = valid encoder frame.
    ``self_kv``: per layer, self-attention (K, V) of the tokens so far, (B, H, t, Dh), or None.
    ``gates``: per layer, the module gates of a gated decoder (``nn/gates.py``: a tuple for
    the whole batch, or relaxed (B, K) gates in training), or None for the plain model. A layer
    whose cross-attention is off has ``cross[i]`` None; one whose self-attention is off keeps
    ``self_kv[i]`` None, so ``tokens`` counts the tokens decoded instead.

    The B hypothesis rows come in U runs of ``B // U`` consecutive rows, a run sharing one
    encoder row (the beams of one utterance): cross-attention then reads each utterance's K/V
    once per step instead of once per beam (``TransformerDecoderLayer``). ``reorder`` keeps
    that layout whenever the new rows allow it.
    """

    cross: list[tuple[Tensor, Tensor] | None]
    cross_mask: Tensor
    self_kv: list[tuple[Tensor, Tensor] | None]
    group: int = 1  # B // U: consecutive hypothesis rows per encoder row
    gates: list | None = None
    tokens: int = 0  # tokens decoded, for decoders that set it (read when no layer keeps K/V)

    @property
    def length(self) -> int:
        """Number of tokens already decoded (t)."""
        for kv in self.self_kv:
            if kv is not None:
                return kv[0].size(2)
        return self.tokens

    def reorder(self, index: Tensor) -> DecoderCache:
        """Keeps/duplicates rows: new row i = old row ``index[i]``; ``index`` (B',) int64.

        Changes the cache in place and returns it. The cross-attention K/V are copied only when
        the encoder rows change, and stay one per run of new rows that share one.
        """
        enc_row = index // self.group  # (B',) encoder row of each new row
        starts = torch.ones_like(enc_row, dtype=torch.bool)
        starts[1:] = enc_row[1:] != enc_row[:-1]
        n_runs = int(starts.sum())
        even = n_runs > 0 and enc_row.numel() % n_runs == 0
        runs = enc_row.view(n_runs, -1) if even else None
        if runs is not None and bool((runs == runs[:, :1]).all()):
            keep, self.group = runs[:, 0], runs.shape[1]  # equal runs: one encoder row each
        else:
            keep, self.group = enc_row, 1  # uneven runs: one encoder row per hypothesis
        rows = self.cross_mask.shape[0]
        if keep.numel() != rows or not torch.equal(keep, torch.arange(rows, device=keep.device)):
            pick_enc = lambda t: t.index_select(0, keep)
            self.cross = [
                None if kv is None else (pick_enc(kv[0]), pick_enc(kv[1])) for kv in self.cross
            ]
            self.cross_mask = pick_enc(self.cross_mask)
        pick = lambda t: t.index_select(0, index)
        self.self_kv = [None if kv is None else (pick(kv[0]), pick(kv[1])) for kv in self.self_kv]
        return self


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Runs the block with ``n`` CPU intra-op threads (None: unchanged), then restores them.

    A search step is ~100 ops on a handful of rows. On a busy machine, or with threads that
    sleep between ops (``OMP_WAIT_POLICY=PASSIVE``), waking a second thread for each can cost
    more than it saves: the op waits until the other thread is scheduled (cross-attention of 5
    queries over 1500 frames: 0.4 ms on one thread, up to 36 ms on two on the loaded 2-core
    machine). On an idle machine with OpenMP's default short spin, two threads are faster.
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def token_loss(
    logits: Tensor, ys_out: Tensor, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Label-smoothed cross-entropy per target token, next-token accuracy, and the token count.

    ``logits`` (N, L, V), ``ys_out`` (N, L) with ``IGNORE_ID`` where no loss is taken; the
    cross-entropy is computed in fp32 whatever the autocast dtype. Returns three scalars.
    """
    valid = ys_out != IGNORE_ID
    num_tokens = valid.sum()
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        ys_out.reshape(-1),
        ignore_index=IGNORE_ID,
        label_smoothing=label_smoothing,
        reduction="sum",
    )
    denom = num_tokens.clamp(min=1)
    correct = ((logits.argmax(-1) == ys_out) & valid).sum()
    return total / denom, correct.float() / denom, num_tokens


def target_lengths(ys_out: Tensor) -> Tensor:
    """(N,) decoder positions up to the last scored token of each row of ``ys_out`` (N, L)."""
    pos = torch.arange(1, ys_out.shape[1] + 1, device=ys_out.device)
    return ((ys_out != IGNORE_ID) * pos).amax(1)


class PatternDecoder:
    """The decoding API (``new_cache``, ``decode_step``, ``ctc_log_probs``) of a gated
    encoder-decoder (``models/gated_s2t.py``, ``models/gated_whisper.py``) with one decoder gate
    pattern for every row of a call: ``pattern`` holds each layer's gates in turn (the order of
    its ``gate_names``), or None for every module on. Off modules are not computed."""

    def __init__(self, model: nn.Module, pattern: tuple[bool, ...] | None):
        self.model = model
        n, k = len(model.decoder.layers), len(model.decoder.layers[0].gate_names)
        if pattern is not None and len(pattern) != n * k:
            raise ValueError(f"decoder gate pattern of {len(pattern)}, expected {n * k}")
        self.pattern = None if pattern is None else tuple(bool(g) for g in pattern)
        self.layers = (
            None if pattern is None else [self.pattern[i * k : (i + 1) * k] for i in range(n)]
        )

    def new_cache(self, enc: Tensor, enc_lens: Tensor) -> DecoderCache:
        return self.model.decoder.new_cache(enc, enc_lens, self.layers)

    def decode_step(self, ys_new: Tensor, cache: DecoderCache, last_only: bool = False) -> Tensor:
        return self.model.decoder(ys_new, cache, last_only=last_only)

    def ctc_log_probs(self, enc: Tensor) -> Tensor:
        return self.model.ctc_log_probs(enc)


class EncoderDecoder(nn.Module):
    """The decoding API of docs/design.md ("Model"), for a model with ``self.encoder`` and a
    ``self.decoder`` that has ``new_cache(enc, enc_lens)`` and ``forward(ys_new, cache)``.

    Subclasses add ``forward`` (the training loss) and ``ctc_log_probs`` (or raise where there
    is no CTC head); decoding strategies need nothing else.
    """

    encoder: nn.Module
    decoder: nn.Module

    def set_attention_backend(self, name: str) -> None:
        """Switches every attention module to backend ``name`` (logged; see nn/attention.py)."""
        set_attention_backend(self, name)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count (a tied output layer counts once)."""
        params = self.parameters()
        return sum(p.numel() for p in params if p.requires_grad or not trainable_only)

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``feats`` (B, T, F), ``feat_lens`` (B,) -> enc (B, T', D), enc_lens (B,)."""
        return self.encoder(feats, feat_lens)

    def new_cache(self, enc: Tensor, enc_lens: Tensor) -> DecoderCache:
        """Cache for incremental decoding; precomputes cross-attention K/V."""
        return self.decoder.new_cache(enc, enc_lens)

    def decode_step(self, ys_new: Tensor, cache: DecoderCache, last_only: bool = False) -> Tensor:
        """``ys_new`` (B, l) newest tokens -> logits (B, l, V); appends self-attention K/V.

        ``last_only``: logits of the newest token only, (B, 1, V), which is all a search step
        reads; the output projection over the vocabulary is then computed for one position
        instead of l (the prompt's first step)."""
        return self.decoder(ys_new, cache, last_only=last_only)

    def decode(self, ys_in: Tensor, enc: Tensor, enc_lens: Tensor) -> Tensor:
        """Teacher forcing: ``ys_in`` (B, L) -> logits (B, L, V)."""
        return self.decoder(ys_in, self.decoder.new_cache(enc, enc_lens))
