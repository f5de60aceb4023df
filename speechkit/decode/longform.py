"""Long-form decoding with OWSM timestamps: fixed windows, parsed segments, stitched results.

An OWSM model decodes at most one window (30 s for OWSM; here: the largest timestamp token of
the tokenizer, e.g. ``<30.00>``) and, prompted without ``<notimestamps>``, writes::

    <sos> <lang> <task> <0.00> text <1.20> <1.20> more text <3.40> <3.40> cut off te

i.e. segments ``<start> text <end>``, times relative to the window start in steps of the
tokenizer's ``time_resolution`` (read from its token list, 0.02 s in OWSM). A segment without its
closing timestamp at the end of a window was cut by the window edge.

Algorithm (``LongformDecoder``): take the window ``[offset, offset + window)`` of the audio
(zero-padded to the window length, as OWSM was trained), decode it, parse its segments; the
complete ones are kept with absolute times ``offset + t``, and the next window starts at the last
complete timestamp, so a cut-off segment is decoded again in full. A window without any complete
segment after 0 (no timestamps, or text that never closes) keeps all its text as one segment over
the window and advances by the full window. The last window (reaching the end of the audio) keeps
its cut-off text too, ending at the end of the audio.

The window decoder is any callable ``(wave (S,) float32 at the feature sample rate) -> token ids
after the prompt`` (``ModelWindowDecoder`` runs the model), so the mechanics can be tested
with forced outputs.

Example::

    p = load_pretrained("packed/owsm-base")
    lf = LongformDecoder.for_model(p, "eng", "asr", DecodeOptions(beam_size=5, ctc_weight=0.3))
    for seg in lf(wave):
        print(f"{seg.start:.2f}-{seg.end:.2f} {seg.text}")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from speechkit.data.features import LogMel
from speechkit.decode.options import DecodeOptions, SpecialIds

logger = logging.getLogger(__name__)

__all__ = [
    "LongformDecoder",
    "ModelWindowDecoder",
    "MonotonicTimestamps",
    "Segment",
    "WindowParse",
    "parse_timestamped",
]

WindowDecoder = Callable[[torch.Tensor], list[int]]


@dataclass
class Segment:
    """One stitched segment: times in seconds (absolute for ``LongformDecoder`` results, relative
    to the window for ``parse_timestamped``), text tokens and their decoded text."""

    start: float
    end: float
    tokens: list[int]
    text: str = ""


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
                complete.append(Segment(start, max(time, start), text, tok.decode(text)))
                prev_end, start, text = max(time, start), None, []
        elif not tok.is_special(t):
            if start is None:
                start = prev_end
            text.append(t)
    tail = text if text else None
    return WindowParse(complete, tail, start if start is not None else prev_end)


class LongformDecoder:
    """Decodes audio of any length window by window (see the module docstring).

    decode_window: wave (S,) -> token ids after the prompt, for one window.
    tok: the model's tokenizer (``is_timestamp``, ``time_of``, ``time_resolution``, ``decode``).
    sample_rate: of the waves given to ``__call__``.
    window_s: window length in seconds; None = the tokenizer's largest timestamp.
    """

    def __init__(
        self,
        decode_window: WindowDecoder,
        tok,
        sample_rate: int,
        window_s: float | None = None,
    ):
        if not getattr(tok, "timestamp_ids", None) or tok.time_resolution is None:
            raise ValueError("long-form decoding needs a tokenizer with timestamp tokens")
        self.decode_window, self.tok, self.sample_rate = decode_window, tok, sample_rate
        self.window_s = float(window_s if window_s is not None else max(tok.timestamp_times))
        self.resolution = float(tok.time_resolution)
        if self.window_s < 2 * self.resolution:
            raise ValueError(f"window {self.window_s} s is shorter than two timestamp steps")

    @classmethod
    def for_model(
        cls,
        pretrained,
        lang: str,
        task: str,
        options: DecodeOptions,
        window_s: float | None = None,
    ) -> LongformDecoder:
        """A decoder that runs ``pretrained`` (a ``speechkit.pretrained.Pretrained``)."""
        tok, sample_rate = pretrained.tokenizer, pretrained.features.sample_rate
        if window_s is None and getattr(tok, "timestamp_times", None):
            window_s = max(tok.timestamp_times)
        pad_to = round((window_s or 0.0) * sample_rate)
        window = ModelWindowDecoder(pretrained, lang, task, options, pad_to)
        return cls(window, tok, sample_rate, window_s)

    def __call__(self, wave: torch.Tensor) -> list[Segment]:
        """wave: (S,) float audio at ``sample_rate``. Returns segments, absolute times (s)."""
        wave = torch.as_tensor(wave).float().flatten()
        duration = wave.numel() / self.sample_rate
        win = round(self.window_s * self.sample_rate)
        out: list[Segment] = []
        offset = 0.0  # seconds, always on the timestamp grid
        while offset < duration - 1e-9:
            first = round(offset * self.sample_rate)
            chunk = wave[first : first + win]
            final = first + win >= wave.numel()
            parsed = parse_timestamped(self.decode_window(chunk), self.tok)
            keep, advance = self._advance(parsed, final, chunk.numel() / self.sample_rate)
            for seg in keep:
                start, end = offset + seg.start, min(offset + seg.end, duration)
                out.append(
                    Segment(round(start, 6), round(max(end, start), 6), seg.tokens, seg.text)
                )
            logger.debug(
                "window at %.2f s: %d segments, advance %.2f s", offset, len(keep), advance
            )
            if final:
                break
            offset = round(offset + advance, 6)
        return out

    def _advance(
        self, parsed: WindowParse, final: bool, chunk_s: float
    ) -> tuple[list[Segment], float]:
        """The segments to keep (relative times) and how far the next window starts."""
        # Snap to the grid; a last complete timestamp at 0 would never move on.
        advance = round(parsed.last_end / self.resolution) * self.resolution
        if advance < self.resolution:  # nothing closed after 0: all text over the window
            tokens = [t for s in parsed.complete for t in s.tokens] + (parsed.tail or [])
            one = [Segment(0.0, chunk_s, tokens, self.tok.decode(tokens))] if tokens else []
            return one, self.window_s
        keep = list(parsed.complete)
        if final and parsed.tail is not None:
            text = self.tok.decode(parsed.tail)
            keep.append(Segment(parsed.tail_start, chunk_s, parsed.tail, text))
        return keep, advance


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
    """Runs a speechkit model on one window: features, encoder, beam/greedy search with the
    timestamp prompt ``<sos> <lang> <task>``; every special token except timestamps and
    ``<eos>`` is suppressed and timestamps never decrease (``MonotonicTimestamps``). Windows
    shorter than ``window_samples`` are zero-padded."""

    def __init__(
        self, pretrained, lang: str, task: str, options: DecodeOptions, window_samples: int = 0
    ):
        tok = pretrained.tokenizer
        self.model, self.options = pretrained.model, options
        self.features = LogMel(pretrained.features)
        self.prefix = torch.tensor([tok.sot_sequence(lang, task, timestamps=True)])
        times = set(tok.timestamp_ids)
        suppress = tuple(i for i in tok.suppress_ids if i not in times)
        self.ids = SpecialIds(eos=tok.eos_id, blank=tok.blank_id, suppress=suppress)
        self.monotonic = MonotonicTimestamps(
            tok.timestamp_ids, tok.timestamp_times, pretrained.model.cfg.vocab_size
        )
        self.window_samples = window_samples

    @torch.inference_mode()
    def __call__(self, wave: torch.Tensor) -> list[int]:
        from speechkit.decode import decode  # the package imports this module's siblings

        if wave.numel() < self.window_samples:
            wave = torch.nn.functional.pad(wave, (0, self.window_samples - wave.numel()))
        device = next(self.model.parameters()).device
        wave = wave.to(device)
        feats, feat_lens = self.features.to(device)(wave[None], torch.tensor([wave.numel()]))
        nbest = decode(
            self.model,
            feats,
            feat_lens,
            self.prefix.to(device),
            self.options,
            self.ids,
            logit_filter=self.monotonic,
        )
        return nbest[0][0].tokens
