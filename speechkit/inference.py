"""Transcribe and translate audio with a Whisper model, the way faster-whisper does by default.

    import speechkit
    results = speechkit.transcribe(["a.wav", "b.flac"], model="whisper-base")
    results[0].text, results[0].language, results[0].segments[0].start

Front end (as faster-whisper 1.2): the waveform (16 kHz mono; other rates are resampled, several
channels averaged) gets 160 zero samples appended and one Whisper log-mel over the whole file
(``LogMel(kind="whisper")``: its floor is ``max - 8`` over the whole file). Windows of up to
3000 frames (30 s) are cut from it and padded with zeros *in log-mel space* to 3000 frames.

Decoding (temperature 0 only; faster-whisper falls back to sampling at higher temperatures when
a result looks repetitive or unlikely: that fallback is not implemented):

* prompt ``<|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>]``; the language of a
  multilingual model, when not given, is the most likely language token after
  ``<|startoftranscript|>`` on the first window (one decoder step; its probability is reported);
* beam search (``beam`` 5) with CTranslate2's rules: score = sum of log-probs / number of text
  tokens, an utterance ends once ``beam`` hypotheses have ended, at most 224 new tokens;
* suppressed before the softmax: Whisper's non-speech symbols (``non_speech_tokens``) and the
  task/start tokens at every step; a space or ``<|endoftext|>`` as first token (suppress_blank);
* audio up to 30 s is one window without timestamps. Longer audio is decoded window by window
  with timestamp tokens (0.02 s steps, timestamp rules in ``WhisperRules``); the next window
  starts at the last complete timestamp, or after the window when the text ran to its end
  (Whisper's sequential long-form algorithm, without conditioning on the previous text).

Files (or waveforms) of one call are decoded in batches of ``batch_size`` windows.
"""

from __future__ import annotations

import io
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from speechkit.config import ConfigError
from speechkit.data.features import LogMel
from speechkit.decode.beam_search import beam_search
from speechkit.decode.greedy import greedy_search
from speechkit.decode.options import DecodeOptions, SpecialIds
from speechkit.models.whisper import WhisperModel
from speechkit.pretrained import Pretrained, load_pretrained
from speechkit.text.whisper import WHISPER_TO_ISO639_3, WhisperTokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "AudioError",
    "Result",
    "Segment",
    "TranscribeOptions",
    "Transcriber",
    "WhisperRules",
    "load_audio",
    "non_speech_tokens",
    "transcribe",
]

SAMPLE_RATE = 16000
HOP = 160  # samples per log-mel frame (10 ms)
WINDOW_FRAMES = 3000  # 30 s
TIME_STEP = 0.02  # seconds per timestamp token (2 log-mel frames)
MAX_NEW_TOKENS = 224  # CTranslate2: min(448 // 2, 448 - prompt)

# Whisper's non-speech symbols: each one's single token (alone or after a space) is suppressed;
# the music signs' first byte-level token is suppressed even when they take several tokens.
_NON_SPEECH = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + (
    "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
)
_MUSIC = "♩♪♫♬♭♮♯"


class AudioError(ValueError):
    """An input that cannot be decoded as audio; the message names it and says why."""


@dataclass
class Segment:
    """A stretch of the transcript with its time span in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    tokens: list[int]


@dataclass
class Result:
    """One input's transcript. ``language``: ISO 639-3 code (``eng``, ``deu``);
    ``language_probability``: its detected probability (1.0 when given or English-only)."""

    name: str
    text: str
    language: str
    language_probability: float
    segments: list[Segment]
    tokens: list[int]
    duration: float


@dataclass(frozen=True)
class TranscribeOptions:
    """beam: beams per window (1 = greedy); language: ISO 639-1/-3 code, None = detect;
    task: ``transcribe`` or ``translate`` (into English); batch_size: windows per encoder call."""

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


# ---- audio -----------------------------------------------------------------------------------


def _resample(wave: np.ndarray, sr: int, name: str) -> np.ndarray:
    if sr == SAMPLE_RATE:
        return wave
    import librosa

    logger.info("%s: resampling %d Hz -> %d Hz", name, sr, SAMPLE_RATE)
    return librosa.resample(wave, orig_sr=sr, target_sr=SAMPLE_RATE).astype(np.float32)


def decode_audio_bytes(data: bytes, name: str) -> np.ndarray:
    """Audio file contents -> (S,) float32 mono 16 kHz; raises AudioError naming ``name``."""
    if not data:
        raise AudioError(f"{name}: empty file (0 bytes)")
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{name}: not a readable audio file ({e})") from e
    if wave.shape[0] == 0:
        raise AudioError(f"{name}: the audio has no samples")
    if wave.shape[1] > 1:
        logger.info("%s: mixing %d channels down to mono", name, wave.shape[1])
    return _resample(wave.mean(axis=1), sr, name)


def load_audio(source: str | Path, name: str | None = None) -> np.ndarray:
    """A file path, or a shell command ending in ``|`` (Kaldi wav.scp) that writes audio to its
    stdout -> (S,) float32 mono 16 kHz. Raises AudioError naming the input and the reason."""
    name = name or str(source)
    text = str(source).strip()
    if text.endswith("|"):
        done = subprocess.run(text[:-1], shell=True, capture_output=True)
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise AudioError(f"{name}: command failed (exit {done.returncode}): {err[0]}")
        return decode_audio_bytes(done.stdout, name)
    path = Path(source)
    if not path.is_file():
        raise AudioError(f"{name}: no such file {path}")
    return decode_audio_bytes(path.read_bytes(), name)


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
    """

    def __init__(self, tok: WhisperTokenizer, suppress, begin=(), timestamps=False, max_initial=50):
        self.tok, self.timestamps, self.max_initial = tok, timestamps, max_initial
        self.suppress = torch.tensor(sorted(set(suppress)), dtype=torch.long)
        self.begin = torch.tensor(sorted(set(begin)), dtype=torch.long)

    def __call__(self, logits: Tensor, tokens: Tensor, step: int) -> Tensor:
        logits = logits.clone()
        logits[:, self.suppress] = float("-inf")
        if step == 0 and self.begin.numel():
            logits[:, self.begin] = float("-inf")
        if self.timestamps:
            self._timestamp_rules(logits, tokens, step)
        return logits

    def _timestamp_rules(self, logits: Tensor, tokens: Tensor, step: int) -> None:
        """In place on (N, V) logits; tokens (N, t) generated so far."""
        tb, eot, n = self.tok.timestamp_begin, self.tok.eos_id, logits.shape[0]
        logits[:, self.tok.notimestamps_id] = float("-inf")
        if step == 0:
            logits[:, :tb] = float("-inf")
            logits[:, tb + self.max_initial + 1 :] = float("-inf")
            return
        is_ts = tokens >= tb  # (N, t)
        last = is_ts[:, -1]
        penult = is_ts[:, -2] if step >= 2 else torch.ones(n, dtype=torch.bool)
        logits[last & penult, tb:] = float("-inf")  # a pair just closed: text next
        logits[last & ~penult, :eot] = float("-inf")  # a lone timestamp: close it or end
        # No timestamp below the last one; after a closed pair, not even equal to it.
        last_ts = torch.where(is_ts, tokens, -1).max(dim=1).values  # (N,), -1 if none
        lowest = torch.where(last & ~penult, last_ts, last_ts + 1)
        cols = torch.arange(tb, logits.shape[1])
        below = (cols[None, :] < lowest[:, None]) & (last_ts >= 0)[:, None]
        logits[:, tb:] = logits[:, tb:].masked_fill(below, float("-inf"))
        logp = logits.log_softmax(-1)
        ts_mass = logp[:, tb:].logsumexp(-1)
        prefer_ts = ts_mass > logp[:, :tb].max(-1).values
        logits[prefer_ts, :tb] = float("-inf")


# ---- long-form segmentation ------------------------------------------------------------------


def split_window(
    tokens: list[int], tok: WhisperTokenizer, offset: float, frames: int
) -> tuple[list[Segment], int]:
    """Tokens of one timestamped window -> segments (seconds from the audio start) and the
    number of log-mel frames to advance. ``offset``: window start in seconds; ``frames``: its
    content frames. A window whose text ends mid-segment is re-decoded from its last timestamp.
    """
    tb = tok.timestamp_begin
    is_ts = [t >= tb for t in tokens]
    lone_end = len(tokens) >= 2 and is_ts[-1] and not is_ts[-2]
    cuts = [i for i in range(1, len(tokens)) if is_ts[i - 1] and is_ts[i]]
    if not cuts:
        stamps = [t - tb for t in tokens if t >= tb]
        end = stamps[-1] * TIME_STEP if stamps and stamps[-1] > 0 else frames * HOP / SAMPLE_RATE
        return _segments([(tokens, offset, offset + end)], tok), frames
    if lone_end:
        cuts.append(len(tokens))
    pieces, begin = [], 0
    for cut in cuts:
        piece = tokens[begin:cut]
        start = (piece[0] - tb) * TIME_STEP if piece[0] >= tb else 0.0
        end = (piece[-1] - tb) * TIME_STEP if piece[-1] >= tb else start
        pieces.append((piece, offset + start, offset + end))
        begin = cut
    advance = frames if lone_end else (tokens[begin - 1] - tb) * 2
    return _segments(pieces, tok), advance if advance > 0 else frames


def _segments(pieces: list[tuple[list[int], float, float]], tok: WhisperTokenizer) -> list:
    out = []
    for piece, start, end in pieces:
        text_ids = [t for t in piece if t < tok.eos_id]
        if text_ids:
            out.append(Segment(round(start, 3), round(end, 3), tok.decode(text_ids), text_ids))
    return out


# ---- the transcriber -------------------------------------------------------------------------


@dataclass
class _Item:
    """Decoding state of one input: its features and how far the windows have got."""

    name: str
    feats: Tensor  # (T, n_mels) log-mel of the whole input (+ 160 zero samples)
    duration: float  # seconds
    lang_id: int | None = None
    lang_prob: float = 1.0
    seek: int = 0  # log-mel frame where the next window starts
    size: int = 0  # content frames of the current window
    tokens: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def content(self) -> int:
        return self.feats.shape[0] - 1

    @property
    def long(self) -> bool:
        """Longer than one window: decoded with timestamps."""
        return self.content > WINDOW_FRAMES

    @property
    def done(self) -> bool:
        return self.seek >= self.content

    def window(self) -> Tensor:
        """(3000, n_mels): the next window's frames, zero-padded (log-mel 0) to 30 s."""
        self.size = min(WINDOW_FRAMES, self.content - self.seek)
        out = self.feats.new_zeros(WINDOW_FRAMES, self.feats.shape[1])
        out[: self.size] = self.feats[self.seek : self.seek + self.size]
        return out


def quantize_int8(model: WhisperModel) -> WhisperModel:
    """A copy of ``model`` with dynamic int8 Linear layers (CPU), weights per output channel.

    The tied output projection gets an int8 copy of the token embedding too (the embedding lookup
    itself stays float32): at beam-search batch sizes reading the V x D table is most of a
    decoder step, and int8 reads a quarter of the bytes. The convolutions stay float32.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
    quantized = quantize_dynamic(model, spec, torch.qint8)
    table = model.decoder.embed.weight.detach()  # (V, D)
    output = torch.nn.Linear(table.shape[1], table.shape[0], bias=False)
    output.weight.data.copy_(table)
    quantized.decoder.output = quantize_dynamic(torch.nn.Sequential(output), spec, torch.qint8)[0]
    return quantized


class Transcriber:
    """A loaded Whisper model with its decoding rules: ``transcriber(waves, names)``.

    ``int8``: ``quantize_int8`` (CPU): every Linear layer and the tied output projection.
    """

    def __init__(
        self,
        pretrained: Pretrained,
        options: TranscribeOptions | None = None,
        device: str | torch.device = "cpu",
        int8: bool = False,
    ):
        if pretrained.model_type != "whisper":
            raise ValueError(
                f"speechkit transcribe needs a Whisper model, got {pretrained.model_type}"
            )
        self.opt = options or TranscribeOptions()
        self.tok: WhisperTokenizer = pretrained.tokenizer
        self.device = torch.device(device)
        model = pretrained.model.to(self.device).eval()
        if int8:
            model = quantize_int8(model)
        self.model = model
        self.logmel = LogMel(pretrained.features)
        self.task = "asr" if self.opt.task == "transcribe" else "st_eng"
        self.tok.task_id(self.task)  # an English-only model cannot translate: fail now
        self.fixed_lang = None if self.opt.language is None else self.tok.lang_id(self.opt.language)
        if not self.tok.multilingual:
            self.fixed_lang = self.tok.lang_id("eng")
        langs = self.tok.whisper_languages if self.tok.multilingual else []
        self.lang_ids = [self.tok.lang_id(c) for c in langs]
        tok = self.tok
        specials = [tok.transcribe_id, tok.translate_id, tok.sos_id, tok.sop_id, tok.startoflm_id,
                    tok.na_id]  # fmt: skip
        suppress = non_speech_tokens(tok) + [i for i in specials if i >= 0]
        begin = [_raw_ids(tok, " ")[0], tok.eos_id] if self.opt.suppress_blank else []
        max_initial = round(self.opt.max_initial_timestamp / TIME_STEP)
        self.rules = WhisperRules(tok, suppress, begin)
        self.ts_rules = WhisperRules(tok, suppress, begin, timestamps=True, max_initial=max_initial)
        self.search_opts = DecodeOptions(
            beam_size=self.opt.beam, length_norm=True, eos_in_length=False, stop="count",
            max_len=self.opt.max_new_tokens, max_len_ratio=1.0,
        )  # fmt: skip
        self.ids = SpecialIds(eos=tok.eos_id, blank=-1, suppress=())

    @classmethod
    def load(
        cls,
        model: str | Path,
        options: TranscribeOptions | None = None,
        device: str | torch.device = "cpu",
        int8: bool = False,
    ) -> Transcriber:
        """``model``: a packed model directory, or a zoo name (``whisper-base``)."""
        if Path(model).is_dir():
            pretrained = load_pretrained(model)
        else:
            from speechkit import zoo

            pretrained = zoo.load(str(model))
        return cls(pretrained, options, device, int8)

    def features(self, wave: np.ndarray | Tensor) -> Tensor:
        """(S,) 16 kHz samples -> (S // 160 + 1, n_mels) Whisper log-mel (faster-whisper's
        framing: 160 zero samples appended, the last frame is not content)."""
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32)).flatten()
        wave = torch.cat([wave, wave.new_zeros(HOP)])
        feats, _ = self.logmel(wave[None], torch.tensor([wave.numel()]))
        return feats[0]

    @torch.inference_mode()
    def __call__(self, waves: list, names: list[str] | None = None) -> list[Result]:
        """waves: (S,) float arrays, 16 kHz mono. Returns one Result per wave, in order."""
        names = names or [f"audio{i}" for i in range(len(waves))]
        items = [_Item(n, self.features(w), len(w) / SAMPLE_RATE) for n, w in zip(names, waves)]
        for item in items:
            if self.fixed_lang is not None:
                item.lang_id = self.fixed_lang
        todo = [i for i, item in enumerate(items) if not item.done]
        while todo:
            for start in range(0, len(todo), self.opt.batch_size):
                self._step([items[i] for i in todo[start : start + self.opt.batch_size]])
            todo = [i for i in todo if not items[i].done]
        return [self._result(item) for item in items]

    def _step(self, items: list[_Item]) -> None:
        """Encodes the next window of every item, detects missing languages, decodes."""
        windows = torch.stack([item.window() for item in items]).to(self.device)
        lens = torch.full((len(items),), WINDOW_FRAMES, dtype=torch.long, device=self.device)
        enc, enc_lens = self.model.encode(windows, lens)
        unknown = [i for i, item in enumerate(items) if item.lang_id is None]
        if unknown:
            ids, probs = self.detect_language(enc[unknown], enc_lens[unknown])
            for i, lang, p in zip(unknown, ids, probs):
                items[i].lang_id, items[i].lang_prob = lang, p
        for long in (False, True):
            rows = [i for i, item in enumerate(items) if item.long == long]
            if not rows:
                continue
            prefix = torch.tensor([self._prompt(items[i], long) for i in rows], device=self.device)
            search = beam_search if self.opt.beam > 1 else greedy_search
            rules = self.ts_rules if long else self.rules
            hyps = search(self.model, enc[rows], enc_lens[rows], prefix, self.search_opts,
                          self.ids, rules)  # fmt: skip
            for i, nbest in zip(rows, hyps):
                self._consume(items[i], nbest[0].tokens, long)

    def detect_language(self, enc: Tensor, enc_lens: Tensor) -> tuple[list[int], list[float]]:
        """One decoder step on ``<|startoftranscript|>``; softmax over the language tokens.
        enc (B, T', D) -> the most likely language token id and its probability per row."""
        if not self.tok.multilingual:
            return [self.fixed_lang] * enc.shape[0], [1.0] * enc.shape[0]
        cache = self.model.new_cache(enc, enc_lens)
        sot = torch.full((enc.shape[0], 1), self.tok.sos_id, device=enc.device)
        logits = self.model.decode_step(sot, cache)[:, -1].float()
        probs = logits[:, self.lang_ids].softmax(-1)
        best = probs.max(-1)
        return [self.lang_ids[i] for i in best.indices.tolist()], best.values.tolist()

    def _prompt(self, item: _Item, timestamps: bool) -> list[int]:
        tok = self.tok
        prompt = [tok.sos_id]
        if tok.multilingual:
            prompt += [item.lang_id, tok.task_id(self.task)]
        return prompt if timestamps else prompt + [tok.notimestamps_id]

    def _consume(self, item: _Item, tokens: list[int], timestamps: bool) -> None:
        if not timestamps:
            text_ids = [t for t in tokens if t < self.tok.eos_id]
            item.segments.append(Segment(0.0, round(item.duration, 3), self.tok.decode(text_ids),
                                         text_ids))  # fmt: skip
            item.tokens += text_ids
            item.seek = item.content
            return
        segments, advance = split_window(tokens, self.tok, item.seek * HOP / SAMPLE_RATE, item.size)
        for seg in segments:
            seg.end = min(seg.end, round(item.duration, 3))
        item.segments += segments
        item.tokens += [t for seg in segments for t in seg.tokens]
        item.seek += advance

    def _result(self, item: _Item) -> Result:
        code = self.tok.id_to_token(item.lang_id)[2:-2] if item.lang_id is not None else "en"
        return Result(
            name=item.name,
            text=self.tok.decode(item.tokens),
            language=WHISPER_TO_ISO639_3.get(code, code),
            language_probability=float(item.lang_prob),
            segments=[s for s in item.segments if s.text],
            tokens=item.tokens,
            duration=item.duration,
        )


def transcribe(
    audio,
    model: str | Path = "whisper-base",
    beam: int = 5,
    language: str | None = None,
    task: Literal["transcribe", "translate"] = "transcribe",
    **kwargs,
) -> list[Result]:
    """Transcribes (or translates into English) audio files or 16 kHz mono waveforms.

    audio: a path, a (S,) array, or a list of them. model: zoo name or packed directory.
    language: ISO 639-1 or 639-3 code; None detects it (multilingual models). Other keyword
    arguments: ``batch_size``, ``device``, ``int8`` (see TranscribeOptions and Transcriber).
    A bad audio file raises AudioError naming it. For many calls keep a :class:`Transcriber`.
    """
    device, int8 = kwargs.pop("device", "cpu"), kwargs.pop("int8", False)
    options = TranscribeOptions(beam=beam, language=language, task=task, **kwargs)
    transcriber = Transcriber.load(model, options, device, int8)
    inputs = audio if isinstance(audio, (list, tuple)) else [audio]
    waves, names = [], []
    for i, x in enumerate(inputs):
        if isinstance(x, (str, Path)):
            waves.append(load_audio(x))
            names.append(str(x))
        else:
            waves.append(np.asarray(x, dtype=np.float32))
            names.append(f"audio{i}")
    return transcriber(waves, names)
