"""Long-form decoding: audio of any length, window by window, for Whisper and OWSM alike.

A Whisper or OWSM model decodes at most one window (30 s) at a time. Longer audio is decoded
sequentially: decode the window that starts at ``offset``, split its output into segments, keep
them with absolute times, and start the next window where the model family's rules say (usually
at the last complete timestamp, so a segment cut by the window edge is decoded again in full).
``LongformDecoder`` runs these mechanics for any number of inputs (``Stream``), decoding the
current windows of up to ``batch_size`` inputs together. Two small objects make a model family:

* a window decoder, ``list[Window] -> token ids after the prompt, one list per window``:
  :class:`ModelWindowDecoder` here (speechkit S2T / imported OWSM models, timestamps on), and
  ``speechkit.decode.whisper.WhisperWindowDecoder``;
* a segmenter, ``(tokens, window) -> (segments relative to the window start, advance)``, with
  ``window_s`` (the longest window its timestamps address) and ``resolution`` (seconds per
  timestamp step): :class:`OwsmSegmenter` here, ``speechkit.decode.whisper.WhisperSegmenter``.

A stream's signal is time-major at ``rate`` units per second: waveform samples for OWSM (each
window is zero-padded to the window length as a waveform and gets its own features, as OWSM was
trained), log-mel frames for Whisper (features over the whole input, windows padded with zeros
in log-mel space, as faster-whisper does). A window is never padded here: the window decoder
pads it.

Stitching (shared): a kept segment's times are ``offset + t``, its end clipped to the stream's
duration, rounded to 1e-6 s; segments without tokens are dropped. ``advance`` None means "after
this window". A stream is finished once its next window would start at or after its end.

OWSM rules (``OwsmSegmenter``): the output after ``<sos> <lang> <task>`` reads
``<0.00> text <1.20> <1.20> more text <3.40> <3.40> cut off te``: a timestamp opens a segment and
the next one closes it (``parse_timestamped``), times in steps of the tokenizer's
``time_resolution``. Complete segments are kept and the next window starts at the last complete
timestamp. A window without a complete segment after 0 keeps all its text as one segment over the
window and advances by the full window. The window that reaches the end of the audio also keeps
its cut-off text, ending at the end of the audio, and is the last.

Example::

    p = load_pretrained("packed/owsm-base")
    lf = LongformDecoder.for_model(p, DecodeOptions(beam_size=5, ctc_weight=0.3))
    for seg in lf(wave, lang="eng", task="asr"):
        print(f"{seg.start:.2f}-{seg.end:.2f} {seg.text}")
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from speechkit.data.features import LogMel
from speechkit.decode.options import DecodeOptions, SpecialIds

logger = logging.getLogger(__name__)

__all__ = [
    "LongformDecoder",
    "ModelWindowDecoder",
    "MonotonicTimestamps",
    "OwsmSegmenter",
    "Segment",
    "Segmenter",
    "Stream",
    "Window",
    "WindowParse",
    "parse_timestamped",
]


@dataclass
class Segment:
    """A stretch of a transcript: times in seconds (absolute in ``LongformDecoder`` results,
    relative to the window from segmenters and ``parse_timestamped``), text and its token ids."""

    start: float
    end: float
    text: str
    tokens: list[int]


@dataclass
class Stream:
    """One input of a long-form decode and how far it has got.

    signal: (N, ...) time-major at the decoder's ``rate``: (S,) samples or (T, n_mels) frames.
    duration: seconds of audio (segment ends are clipped to it). lang / task: the spoken language
    (ISO 639-3; None: the window decoder may detect it) and the task (``asr``, ``st_eng`` ...).
    offset: seconds, where the next window starts. info: what the window decoder learned about
    this input (e.g. the detected language).
    """

    signal: torch.Tensor
    duration: float
    lang: str | None = None
    task: str = "asr"
    offset: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    info: dict = field(default_factory=dict)


@dataclass
class Window:
    """The part of a stream to decode next: ``chunk`` = signal[first : first + n] (not padded),
    starting ``offset`` seconds into the stream and ``seconds`` long; ``final``: it reaches the
    end of the signal."""

    stream: Stream
    chunk: torch.Tensor
    offset: float
    seconds: float
    final: bool

    @property
    def whole(self) -> bool:
        """The whole input fits in this one window."""
        return self.offset == 0.0 and self.final


WindowDecoder = Callable[[list[Window]], list[list[int]]]


class Segmenter(Protocol):
    """Splits one window's output into segments and says where the next window starts."""

    window_s: float  # the longest window the timestamps address (seconds)
    resolution: float  # seconds per timestamp step

    def __call__(self, tokens: list[int], window: Window) -> tuple[list[Segment], float | None]:
        """tokens: ids after the prompt (no ``<eos>``). Returns segments (times relative to the
        window start, seconds) and the advance in seconds (None: after this window)."""
        ...


class LongformDecoder:
    """Decodes streams of any length window by window (see the module docstring).

    decode_windows: a window decoder (``list[Window] -> list[list[int]]``).
    segmenter: the family's ``Segmenter``. rate: signal units per second (16000 samples, or 100
    log-mel frames). window_s: window length in seconds; None = ``segmenter.window_s``.
    batch_size: windows (of different streams) per ``decode_windows`` call.
    """

    def __init__(
        self,
        decode_windows: WindowDecoder,
        segmenter: Segmenter,
        rate: float,
        window_s: float | None = None,
        batch_size: int = 1,
    ):
        self.decode_windows, self.segmenter, self.rate = decode_windows, segmenter, rate
        self.window_s = float(window_s if window_s is not None else segmenter.window_s)
        if self.window_s < 2 * segmenter.resolution:
            raise ValueError(f"window {self.window_s} s is shorter than two timestamp steps")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.window = round(self.window_s * rate)  # in signal units
        self.batch_size = batch_size

    @classmethod
    def for_model(
        cls,
        pretrained,
        options: DecodeOptions,
        window_s: float | None = None,
        batch_size: int = 1,
    ) -> LongformDecoder:
        """Decodes with ``pretrained`` (a ``speechkit.pretrained.Pretrained`` whose tokenizer
        has timestamp tokens, e.g. an imported OWSM model) on waveforms at its sample rate."""
        segmenter = OwsmSegmenter(pretrained.tokenizer)
        window_s = segmenter.window_s if window_s is None else window_s
        sample_rate = pretrained.features.sample_rate
        window = ModelWindowDecoder(pretrained, options, round(window_s * sample_rate))
        return cls(window, segmenter, sample_rate, window_s, batch_size)

    def __call__(
        self, signal, lang: str | None = None, task: str = "asr", duration: float | None = None
    ) -> list[Segment]:
        """One input: signal (N, ...) at ``rate`` -> its segments (absolute times, seconds)."""
        signal = torch.as_tensor(signal)
        if duration is None:
            duration = signal.shape[0] / self.rate
        return self.decode([Stream(signal, duration, lang, task)])[0]

    def decode(self, streams: Sequence[Stream]) -> list[list[Segment]]:
        """Decodes every stream to its end; returns their segments (also in ``stream.segments``)."""
        todo = [s for s in streams if not self._finished(s)]
        while todo:
            for start in range(0, len(todo), self.batch_size):
                windows = [self._window(s) for s in todo[start : start + self.batch_size]]
                outputs = self.decode_windows(windows)
                if len(outputs) != len(windows):
                    raise RuntimeError(f"{len(outputs)} outputs for {len(windows)} windows")
                for window, tokens in zip(windows, outputs):
                    self._consume(window, tokens)
            todo = [s for s in todo if not self._finished(s)]
        return [s.segments for s in streams]

    def _first(self, stream: Stream) -> int:
        return round(stream.offset * self.rate)

    def _finished(self, stream: Stream) -> bool:
        return self._first(stream) >= stream.signal.shape[0]

    def _window(self, stream: Stream) -> Window:
        first = self._first(stream)
        chunk = stream.signal[first : first + self.window]
        final = first + self.window >= stream.signal.shape[0]
        return Window(stream, chunk, stream.offset, chunk.shape[0] / self.rate, final)

    def _consume(self, window: Window, tokens: list[int]) -> None:
        stream = window.stream
        segments, advance = self.segmenter(tokens, window)
        for seg in segments:
            if not seg.tokens:
                continue
            start = window.offset + seg.start
            end = max(min(window.offset + seg.end, stream.duration), start)
            stream.segments.append(Segment(round(start, 6), round(end, 6), seg.text, seg.tokens))
        step = window.seconds if advance is None else advance
        offset = round(window.offset + step, 6)
        if round(offset * self.rate) <= self._first(stream):  # never stand still
            offset = round(window.offset + window.seconds, 6)
        logger.debug("window at %.2f s: %d segments, next at %.2f s", window.offset,
                     len(segments), offset)  # fmt: skip
        stream.offset = offset


# ---- OWSM ----------------------------------------------------------------------------------


@dataclass
class WindowParse:
    """Segments of one window: ``complete`` (closed by a timestamp), ``tail`` (text after the last
    opening timestamp that was never closed, or None) and ``tail_start`` (its start time)."""

    complete: list[Segment]
    tail: list[int] | None
    tail_start: float

    @property
    def last_end(self) -> float:
        """End of the last complete segment (0.0 when there is none)."""
        return self.complete[-1].end if self.complete else 0.0


def parse_timestamped(tokens: Sequence[int], tok) -> WindowParse:
    """Splits a window's output (ids after ``<sos> <lang> <task>``, without ``<eos>``) into
    segments. A timestamp opens a segment when none is open and closes it otherwise; a closing
    timestamp right after an opening one (no text between) moves the opening instead; text before
    any timestamp starts at the previous end (0.0). Other special tokens are dropped."""
    complete: list[Segment] = []
    start: float | None = None
    text: list[int] = []
    prev_end = 0.0
    for t in tokens:
        t = int(t)
        if tok.is_timestamp(t):
            time = tok.time_of(t)
            if start is None or not text:
                start = time
            else:
                end = max(time, start)
                complete.append(Segment(start, end, tok.decode(text), text))
                prev_end, start, text = end, None, []
        elif not tok.is_special(t):
            if start is None:
                start = prev_end
            text.append(t)
    tail = text if text else None
    return WindowParse(complete, tail, start if start is not None else prev_end)


class OwsmSegmenter:
    """OWSM's segment rules (module docstring) for a tokenizer with timestamp tokens
    (``is_timestamp``, ``time_of``, ``timestamp_times``, ``time_resolution``, ``decode``)."""

    def __init__(self, tok):
        if not getattr(tok, "timestamp_ids", None) or tok.time_resolution is None:
            raise ValueError("long-form decoding needs a tokenizer with timestamp tokens")
        self.tok = tok
        self.window_s = float(max(tok.timestamp_times))
        self.resolution = float(tok.time_resolution)

    def __call__(self, tokens: list[int], window: Window) -> tuple[list[Segment], float | None]:
        parsed = parse_timestamped(tokens, self.tok)
        # Snap to the grid; a last complete timestamp at 0 would never move on.
        advance = round(parsed.last_end / self.resolution) * self.resolution
        if advance < self.resolution:  # nothing closed after 0: all text over the window
            ids = [t for s in parsed.complete for t in s.tokens] + (parsed.tail or [])
            return [Segment(0.0, window.seconds, self.tok.decode(ids), ids)], None
        keep = list(parsed.complete)
        if not window.final:
            return keep, advance
        if parsed.tail is not None:
            text = self.tok.decode(parsed.tail)
            keep.append(Segment(parsed.tail_start, window.seconds, text, parsed.tail))
        return keep, None


class MonotonicTimestamps:
    """A ``LogitFilter`` (``speechkit.decode.options``): no row may emit a timestamp earlier than
    the last one it emitted, so segments within a window never go back in time.

    Equal times stay allowed: OWSM closes one segment and opens the next at the same time. The
    first timestamp of a row is free. ``timestamp_ids`` / ``times``: the tokenizer's timestamp
    tokens and their times in seconds (any order).
    """

    def __init__(self, timestamp_ids: Sequence[int], times: Sequence[float], vocab_size: int):
        self.ids = torch.tensor(list(timestamp_ids), dtype=torch.long)
        self.times = torch.tensor(list(times), dtype=torch.float32)
        # time of every vocabulary entry, -1 for text and other special tokens
        self.time_of = torch.full((vocab_size,), -1.0)
        self.time_of[self.ids] = self.times

    def __call__(self, logits: torch.Tensor, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """logits: (N, V); tokens: (N, t) generated so far. Returns (N, V), -inf = forbidden."""
        if step == 0:
            return logits
        if self.time_of.device != logits.device:  # once, not at every step
            self.ids, self.times, self.time_of = (
                t.to(logits.device) for t in (self.ids, self.times, self.time_of)
            )
        last = self.time_of[tokens].max(dim=1).values  # (N,): -1 without timestamps
        earlier = self.times[None, :] < last[:, None]  # (N, K)
        logits = logits.clone()
        logits[:, self.ids] = logits[:, self.ids].masked_fill(earlier, float("-inf"))
        return logits


class ModelWindowDecoder:
    """Runs a speechkit S2T model on waveform windows: features, encoder, beam/greedy search with
    the timestamp prompt ``<sos> <lang> <task>`` of each window's stream; every special token
    except timestamps and ``<eos>`` is suppressed and timestamps never decrease
    (``MonotonicTimestamps``). Windows shorter than ``window_samples`` are zero-padded."""

    def __init__(self, pretrained, options: DecodeOptions, window_samples: int = 0):
        tok = pretrained.tokenizer
        self.tok, self.model, self.options = tok, pretrained.model, options
        self.features = LogMel(pretrained.features)
        times = set(tok.timestamp_ids)
        suppress = tuple(i for i in tok.suppress_ids if i not in times)
        self.ids = SpecialIds(eos=tok.eos_id, blank=tok.blank_id, suppress=suppress)
        self.monotonic = MonotonicTimestamps(
            tok.timestamp_ids, tok.timestamp_times, pretrained.model.cfg.vocab_size
        )
        self.window_samples = window_samples

    def prompt(self, window: Window) -> list[int]:
        stream = window.stream
        if stream.lang is None:
            raise ValueError("an S2T model needs the spoken language of every input")
        return self.tok.sot_sequence(stream.lang, stream.task, timestamps=True)

    @torch.inference_mode()
    def __call__(self, windows: list[Window]) -> list[list[int]]:
        from speechkit.decode import decode  # the package imports this module's siblings

        device = next(self.model.parameters()).device
        features = self.features.to(device)
        groups: dict[int, list[int]] = defaultdict(list)  # prompt length -> window rows
        prompts = [self.prompt(w) for w in windows]
        for i, p in enumerate(prompts):
            groups[len(p)].append(i)
        out: list[list[int]] = [[] for _ in windows]
        for rows in groups.values():
            size = max([self.window_samples] + [windows[i].chunk.numel() for i in rows])
            wave = torch.zeros(len(rows), size, device=device)
            for j, i in enumerate(rows):
                chunk = windows[i].chunk.flatten()
                wave[j, : chunk.numel()] = chunk.to(device=device, dtype=wave.dtype)
            lens = torch.full((len(rows),), size, dtype=torch.long, device=device)
            feats, feat_lens = features(wave, lens)
            prefix = torch.tensor([prompts[i] for i in rows], device=device)
            nbest = decode(self.model, feats, feat_lens, prefix, self.options, self.ids,
                           logit_filter=self.monotonic)  # fmt: skip
            for i, hyps in zip(rows, nbest):
                out[i] = hyps[0].tokens
        return out
