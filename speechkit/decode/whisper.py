"""Whisper decoding, the way faster-whisper 1.2 does it by default: prompt, rules, long-form.

Windows (``WhisperWindowDecoder``): up to 3000 log-mel frames (30 s) of an input, padded with
zeros *in log-mel space* to 3000 frames, encoded in batches. Temperature 0 only (faster-whisper
falls back to sampling when a result looks repetitive or unlikely: not implemented).

* prompt ``<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>]``; the language of a
  multilingual model, when not given, is the most likely language token after
  ``<|startoftranscript|>`` on the input's first window (one decoder step; its probability is
  kept in ``stream.info["lang_prob"]``);
* beam search (beam 5) with CTranslate2's rules: score = sum of log-probs / number of text
  tokens, an input ends once ``beam`` hypotheses have ended, at most 224 new tokens;
* suppressed before the softmax (``WhisperRules``): Whisper's non-speech symbols
  (``non_speech_tokens``) and the task/start tokens at every step; a space or ``<|endoftext|>``
  as first token (suppress_blank);
* an input that fits one window is decoded without timestamps, as one segment over the whole
  input. Longer inputs are decoded window by window with timestamp tokens (0.02 s steps, rules in
  ``WhisperRules``) by ``speechkit.decode.longform.LongformDecoder`` with ``WhisperSegmenter``:
  the next window starts at the last complete timestamp, or after the window when the text ran
  to its end (Whisper's sequential algorithm, without conditioning on the previous text).

Every tensor the rules build lives on the logits' device, so decoding on a GPU never mixes in
CPU tensors (and nothing waits for the host between steps).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from speechkit.config import ConfigError
from speechkit.decode.beam_search import beam_search
from speechkit.decode.greedy import greedy_search
from speechkit.decode.longform import Segment, Window
from speechkit.decode.options import DecodeOptions, SpecialIds
from speechkit.nn.decoder import intra_op_threads
from speechkit.text.whisper import WhisperTokenizer

__all__ = [
    "FRAME_RATE",
    "SAMPLE_RATE",
    "TranscribeOptions",
    "WhisperRules",
    "WhisperSegmenter",
    "WhisperWindowDecoder",
    "non_speech_tokens",
]

SAMPLE_RATE = 16000
HOP = 160  # samples per log-mel frame (10 ms)
FRAME_RATE = SAMPLE_RATE // HOP  # log-mel frames per second
WINDOW_FRAMES = 3000  # 30 s
TIME_STEP = 0.02  # seconds per timestamp token (2 log-mel frames)
MAX_NEW_TOKENS = 224  # CTranslate2: min(448 // 2, 448 - prompt)
SMALL_SEARCH_ROWS = 8  # hypotheses up to which a search runs on ``search_threads``

# Whisper's non-speech symbols: each one's single token (alone or after a space) is suppressed;
# the music signs' first byte-level token is suppressed even when they take several tokens.
_NON_SPEECH = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + (
    "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
)
_MUSIC = "♩♪♫♬♭♮♯"


@dataclass(frozen=True)
class TranscribeOptions:
    """beam: beams per window (1 = greedy); language: ISO 639-1/-3 code, None = detect;
    task: ``transcribe`` or ``translate`` (into English); batch_size: windows per encoder call;
    max_new_tokens: per window; suppress_blank: no space or end as first token;
    max_initial_timestamp: seconds, the latest first timestamp of a window."""

    beam: int = 5
    language: str | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    batch_size: int = 8
    max_new_tokens: int = MAX_NEW_TOKENS
    suppress_blank: bool = True
    max_initial_timestamp: float = 1.0

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise ConfigError(f"beam must be >= 1, got {self.beam}")
        if self.task not in ("transcribe", "translate"):
            raise ConfigError(f"task must be 'transcribe' or 'translate', got {self.task!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise ConfigError(f"max_new_tokens must be in [1, {MAX_NEW_TOKENS}]")


# ---- token rules -----------------------------------------------------------------------------


def _raw_ids(tok: WhisperTokenizer, text: str) -> list[int]:
    # WhisperTokenizer.encode prepends a space; the symbol rules need the bare encoding too.
    return tok._tok.encode(text, add_special_tokens=False).ids


def non_speech_tokens(tok: WhisperTokenizer) -> list[int]:
    """Ids of symbols Whisper never emits by default (speaker tags, music notes, brackets);
    a hyphen or apostrophe after a space is among them, inside a word it is not."""
    ids = {_raw_ids(tok, " -")[0], _raw_ids(tok, " '")[0]}
    for symbol in _NON_SPEECH + list(_MUSIC):
        for pieces in (_raw_ids(tok, symbol), _raw_ids(tok, " " + symbol)):
            if len(pieces) == 1 or symbol in _MUSIC:
                ids.add(pieces[0])
    return sorted(ids)


class WhisperRules:
    """Whisper's logit rules as a ``LogitFilter`` (``speechkit.decode.options``).

    Always: ``suppress`` ids get -inf. At step 0: ``begin`` ids too (suppress_blank). With
    ``timestamps``: ``<|notimestamps|>`` is forbidden; the first token is a timestamp no later than
    ``max_initial`` steps; timestamps come in pairs (after a lone one only a timestamp or
    ``<|endoftext|>``, after a pair only text) and never decrease; a timestamp is forced when
    all timestamps together are likelier than the best other token.

    Every tensor is made on (or moved once to) the logits' device, and masks are applied with
    ``masked_fill`` rather than boolean indexing, so no step waits for the host.
    """

    def __init__(self, tok: WhisperTokenizer, suppress, begin=(), timestamps=False, max_initial=50):
        self.tok, self.timestamps, self.max_initial = tok, timestamps, max_initial
        self.suppress = torch.tensor(sorted(set(suppress)), dtype=torch.long)
        self.begin = torch.tensor(sorted(set(begin)), dtype=torch.long)

    def _to(self, device: torch.device) -> None:
        if self.suppress.device != device:  # once per device, not at every step
            self.suppress, self.begin = self.suppress.to(device), self.begin.to(device)

    def __call__(self, logits: Tensor, tokens: Tensor, step: int) -> Tensor:
        """logits: (N, V) raw scores; tokens: (N, step) generated so far. Returns (N, V)."""
        self._to(logits.device)
        logits = logits.clone()
        if self.suppress.numel():
            logits.index_fill_(1, self.suppress, float("-inf"))
        if step == 0 and self.begin.numel():
            logits.index_fill_(1, self.begin, float("-inf"))
        if self.timestamps:
            self._timestamp_rules(logits, tokens, step)
        return logits

    def _timestamp_rules(self, logits: Tensor, tokens: Tensor, step: int) -> None:
        """In place on (N, V) logits; tokens (N, t) generated so far."""
        tb, eot, inf = self.tok.timestamp_begin, self.tok.eos_id, float("-inf")
        logits[:, self.tok.notimestamps_id] = inf
        if step == 0:
            logits[:, :tb] = inf
            logits[:, tb + self.max_initial + 1 :] = inf
            return
        is_ts = tokens >= tb  # (N, t)
        last = is_ts[:, -1]
        penult = is_ts[:, -2] if step >= 2 else torch.ones_like(last)
        text, stamps = logits[:, :tb], logits[:, tb:]  # views: fills write through
        stamps.masked_fill_((last & penult)[:, None], inf)  # a pair just closed: text next
        logits[:, :eot].masked_fill_((last & ~penult)[:, None], inf)  # lone: close it or end
        # No timestamp below the last one; after a closed pair, not even equal to it.
        last_ts = torch.where(is_ts, tokens, -1).max(dim=1).values  # (N,), -1 if none
        lowest = torch.where(last & ~penult, last_ts, last_ts + 1)
        cols = torch.arange(tb, logits.shape[1], device=logits.device)
        below = (cols[None, :] < lowest[:, None]) & (last_ts >= 0)[:, None]
        stamps.masked_fill_(below, inf)
        logp = logits.log_softmax(-1)
        ts_mass = logp[:, tb:].logsumexp(-1)
        prefer_ts = ts_mass > logp[:, :tb].max(-1).values
        text.masked_fill_(prefer_ts[:, None], inf)


# ---- long-form segments ----------------------------------------------------------------------


class WhisperSegmenter:
    """Whisper's segments of one window (a ``speechkit.decode.longform.Segmenter``).

    A window that is the whole input was decoded without timestamps: one segment over the whole
    input. Otherwise a segment ends where two timestamps follow each other (``<|t1|><|t2|>``:
    the end of one and the start of the next); the next window starts at the last such pair's
    second timestamp. A window that ends on a lone timestamp (the text ended inside it), or has
    no pair at all (one segment up to its last timestamp, else over the window), is done: the
    next window starts after it.
    """

    window_s = WINDOW_FRAMES / FRAME_RATE
    resolution = TIME_STEP

    def __init__(self, tok: WhisperTokenizer):
        self.tok = tok

    def __call__(self, tokens: list[int], window: Window) -> tuple[list[Segment], float | None]:
        if window.whole:
            return self._segments([(tokens, 0.0, window.stream.duration - window.offset)]), None
        tb = self.tok.timestamp_begin
        is_ts = [t >= tb for t in tokens]
        lone_end = len(tokens) >= 2 and is_ts[-1] and not is_ts[-2]
        cuts = [i for i in range(1, len(tokens)) if is_ts[i - 1] and is_ts[i]]
        if not cuts:
            stamps = [t - tb for t in tokens if t >= tb]
            end = stamps[-1] * TIME_STEP if stamps and stamps[-1] > 0 else window.seconds
            return self._segments([(tokens, 0.0, end)]), None
        if lone_end:
            cuts.append(len(tokens))
        pieces, begin = [], 0
        for cut in cuts:
            piece = tokens[begin:cut]
            start = (piece[0] - tb) * TIME_STEP if piece[0] >= tb else 0.0
            end = (piece[-1] - tb) * TIME_STEP if piece[-1] >= tb else start
            pieces.append((piece, start, end))
            begin = cut
        advance = None if lone_end else (tokens[begin - 1] - tb) * TIME_STEP
        return self._segments(pieces), advance if advance else None

    def _segments(self, pieces: list[tuple[list[int], float, float]]) -> list[Segment]:
        out = []
        for piece, start, end in pieces:
            text_ids = [t for t in piece if t < self.tok.eos_id]
            if text_ids:
                out.append(Segment(start, end, self.tok.decode(text_ids), text_ids))
        return out


# ---- window decoder --------------------------------------------------------------------------


class WhisperWindowDecoder:
    """Decodes windows of Whisper log-mel frames (a ``longform.WindowDecoder``).

    model: a ``WhisperModel`` (on ``device``); windows: chunks of (n <= 3000, n_mels) frames of
    streams whose ``lang`` is an ISO 639-1/-3 code or None (detected on the first window and
    kept in ``stream.info``: ``lang_id``, ``lang_prob``) and whose ``task`` is ``asr`` or
    ``st_eng``. Returns the tokens after the prompt of each window, ``<|endoftext|>`` excluded.

    ``search_threads`` (CPU): intra-op threads of the decoder steps (language detection and the
    search) of a call with at most ``SMALL_SEARCH_ROWS`` hypotheses (one window, beam 5), except
    for their output projection, which runs with the caller's threads like the encoder (see
    ``speechkit.nn.decoder.intra_op_threads``); None (default) = the caller's for all. On an
    idle machine under OpenMP's default wait policy two threads made tiny.en's one-file
    transcription 1.17x faster than one; on a busy machine with passive waiting, one was faster
    (egs/phrasebook/whisper1/RESULTS.md). Larger searches (several windows per call) always keep
    the caller's threads.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tok: WhisperTokenizer,
        options: TranscribeOptions,
        device: str | torch.device = "cpu",
        search_threads: int | None = None,
    ):
        self.model, self.tok, self.opt = model, tok, options
        self.device = torch.device(device)
        self.search_threads = search_threads if self.device.type == "cpu" else None
        langs = tok.whisper_languages if tok.multilingual else []
        self.lang_ids = [tok.lang_id(c) for c in langs]
        specials = [tok.transcribe_id, tok.translate_id, tok.sos_id, tok.sop_id, tok.startoflm_id,
                    tok.na_id]  # fmt: skip
        suppress = non_speech_tokens(tok) + [i for i in specials if i >= 0]
        begin = [_raw_ids(tok, " ")[0], tok.eos_id] if options.suppress_blank else []
        max_initial = round(options.max_initial_timestamp / TIME_STEP)
        self.rules = WhisperRules(tok, suppress, begin)
        self.ts_rules = WhisperRules(tok, suppress, begin, timestamps=True, max_initial=max_initial)
        # CTranslate2's budget: at most half the decoder positions (224 of Whisper's 448).
        max_len = min(options.max_new_tokens, model.cfg.n_text_ctx // 2)
        self.search_opts = DecodeOptions(
            beam_size=options.beam, length_norm=True, eos_in_length=False, stop="count",
            max_len=max_len, max_len_ratio=1.0,
        )  # fmt: skip
        self.ids = SpecialIds(eos=tok.eos_id, blank=-1, suppress=())
        self.gate_records: list[dict] = []  # one per window decoded by a gated model

    @torch.inference_mode()
    def __call__(self, windows: list[Window]) -> list[list[int]]:
        frames = torch.zeros(len(windows), WINDOW_FRAMES, windows[0].chunk.shape[1])
        for i, w in enumerate(windows):
            frames[i, : w.chunk.shape[0]] = w.chunk
        frames = frames.to(self.device)
        lens = torch.full((len(windows),), WINDOW_FRAMES, dtype=torch.long, device=self.device)
        enc, enc_lens = self.model.encode(frames, lens)
        decoder = self.model.decoder
        decoder.output_threads = torch.get_num_threads()
        small = len(windows) * self.opt.beam <= SMALL_SEARCH_ROWS
        try:
            with intra_op_threads(self.search_threads if small else None):
                return self._search(windows, enc, enc_lens)
        finally:
            decoder.output_threads = None

    def _search(self, windows: list[Window], enc: Tensor, enc_lens: Tensor) -> list[list[int]]:
        self._languages(windows, enc, enc_lens)
        out: list[list[int]] = [[] for _ in windows]
        for timestamps in (False, True):
            rows = [i for i, w in enumerate(windows) if w.whole != timestamps]
            if not rows:
                continue
            search = beam_search if self.opt.beam > 1 else greedy_search
            rules = self.ts_rules if timestamps else self.rules
            for decoder, group in self._gate_groups(rows, enc, enc_lens):
                prompts = [self.prompt(windows[i].stream, timestamps) for i in group]
                prefix = torch.tensor(prompts, device=self.device)
                hyps = search(decoder, enc[group], enc_lens[group], prefix, self.search_opts,
                              self.ids, rules)  # fmt: skip
                for i, nbest in zip(group, hyps):
                    out[i] = nbest[0].tokens
                    if decoder is not self.model:
                        self._record(decoder.pattern, int(enc_lens[i]), len(prompts[0]),
                                     len(out[i]))  # fmt: skip
        return out

    def _gate_groups(self, rows: list[int], enc: Tensor, enc_lens: Tensor) -> list:
        """(decoder, rows) pairs: the model itself for all rows, or for a gated model
        (``models/gated_whisper.py``) one gated decoder per gate pattern among ``rows``, so an
        off module is never computed."""
        if not hasattr(self.model, "decoder_gates"):
            return [(self.model, rows)]
        gates = self.model.decoder_gates(enc[rows], enc_lens[rows]).cpu()
        groups: dict[tuple[bool, ...], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(tuple(gates[i].tolist()), []).append(row)
        return [(self.model.gated_decoder(p), group) for p, group in groups.items()]

    def _record(self, pattern: tuple[bool, ...], T: int, prompt: int, tokens: int) -> None:
        """Compute accounting of one window decoded with gates: decoder GFLOPs (analytic,
        over the prompt, the hypothesis and ``<|endoftext|>``, output layer included) and the
        FLOP-weighted fraction of the gated modules skipped."""
        L = torch.tensor([prompt + tokens + 1])
        flops = self.model.module_flops(torch.tensor([T]), L)[0]
        kept = float((flops * torch.tensor(pattern, dtype=flops.dtype)).sum())
        out_layer = 2.0 * float(L[0]) * self.model.cfg.n_text_state * self.model.cfg.n_vocab
        self.gate_records.append({
            "dec_gates": "".join("1" if g else "0" for g in pattern),
            "gflops_dec": (kept + out_layer) / 1e9,
            "gflops_dec_full": (float(flops.sum()) + out_layer) / 1e9,
            "sparsity": 1.0 - kept / float(flops.sum()),
        })  # fmt: skip

    def gate_summary(self) -> dict | None:
        """Means over the windows decoded with gates (None if none were): decoder GFLOPs with
        and without gates, sparsity, the number of distinct gate patterns, and how many windows
        each pattern decoded (``pattern_windows``: one character per decoder module, layer by
        layer in ``TransformerDecoderLayer.GATED`` order, ``1`` = run), most used first."""
        if not self.gate_records:
            return None
        n = len(self.gate_records)
        mean = lambda k: sum(r[k] for r in self.gate_records) / n  # noqa: E731
        return {
            "budget": float(self.model.budget),
            "windows": n,
            "gflops_dec": mean("gflops_dec"),
            "gflops_dec_full": mean("gflops_dec_full"),
            "sparsity": mean("sparsity"),
            "gate_patterns": len({r["dec_gates"] for r in self.gate_records}),
            "pattern_windows": dict(
                Counter(r["dec_gates"] for r in self.gate_records).most_common()
            ),
        }

    def _languages(self, windows: list[Window], enc: Tensor, enc_lens: Tensor) -> None:
        """Fills ``stream.info`` lang_id / lang_prob: given, English-only, or detected."""
        unknown = []
        for i, w in enumerate(windows):
            info = w.stream.info
            if "lang_id" in info:
                continue
            if w.stream.lang is not None or not self.tok.multilingual:
                info["lang_id"] = self.tok.lang_id(w.stream.lang or "eng")
                info["lang_prob"] = 1.0
            else:
                unknown.append(i)
        if unknown:
            ids, probs = self.detect_language(enc[unknown], enc_lens[unknown])
            for i, lang, p in zip(unknown, ids, probs):
                windows[i].stream.info.update(lang_id=lang, lang_prob=p)

    def detect_language(self, enc: Tensor, enc_lens: Tensor) -> tuple[list[int], list[float]]:
        """One decoder step on ``<|startoftranscript|>``; softmax over the language tokens.
        enc (B, T', D) -> the most likely language token id and its probability per row."""
        cache = self.model.new_cache(enc, enc_lens)
        sot = torch.full((enc.shape[0], 1), self.tok.sos_id, device=enc.device)
        logits = self.model.decode_step(sot, cache, last_only=True)[:, -1].float()
        probs = logits[:, self.lang_ids].softmax(-1)
        best = probs.max(-1)
        return [self.lang_ids[i] for i in best.indices.tolist()], best.values.tolist()

    def prompt(self, stream, timestamps: bool) -> list[int]:
        """``<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>]`` of a stream."""
        tok = self.tok
        prompt = [tok.sos_id]
        if tok.multilingual:
            prompt += [stream.info["lang_id"], tok.task_id(stream.task)]
        return prompt if timestamps else prompt + [tok.notimestamps_id]
