"""Transcribe and translate audio with a Whisper model, the way faster-whisper does by default.

    import speechkit
    results = speechkit.transcribe(["a.wav", "b.flac"], model="whisper-base")
    results[0].text, results[0].language, results[0].segments[0].start

Front end (as faster-whisper 1.2): the waveform (16 kHz mono; other rates are resampled, several
channels averaged: ``speechkit.data.audio.load_audio``) gets 160 zero samples appended and one
Whisper log-mel over the whole file (``LogMel(kind="whisper")``: its floor is ``max - 8`` over the
whole file). Windows of up to 3000 frames (30 s) are cut from it and padded with zeros *in
log-mel space* to 3000 frames.

Decoding: Whisper's prompt, beam search and token rules (``speechkit.decode.whisper``); audio up
to 30 s is one window without timestamps, longer audio is decoded window by window with
timestamps by the long-form decoder that OWSM models use too (``speechkit.decode.longform``).
Files (or waveforms) of one call are decoded in batches of ``batch_size`` windows.

A path given here is always a file name: nothing is ever run through a shell (Kaldi ``wav.scp``
pipes are read by ``speechkit.data.kaldi``, and only when allowed).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from speechkit.data.audio import AudioError, load_audio
from speechkit.data.features import LogMel
from speechkit.decode.longform import LongformDecoder, Segment, Stream
from speechkit.decode.whisper import (
    FRAME_RATE,
    HOP,
    SAMPLE_RATE,
    TranscribeOptions,
    WhisperSegmenter,
    WhisperWindowDecoder,
)
from speechkit.models.whisper import StepKernel, WhisperModel
from speechkit.nn.gates import decoding_budget
from speechkit.nn.int8 import quantize_linears
from speechkit.pretrained import WHISPER_TYPES, Pretrained, load_pretrained
from speechkit.text.whisper import WHISPER_TO_ISO639_3, WhisperTokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "AudioError",
    "Result",
    "Segment",
    "TranscribeOptions",
    "Transcriber",
    "load_audio",
    "quantize_int8",
    "transcribe",
]


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


def quantize_int8(
    model: WhisperModel,
    inplace: bool = False,
    keep_float: Collection[str] = (),
    act_scales: str = "row",
) -> WhisperModel:
    """A copy of ``model`` (or ``model`` itself, ``inplace``) with dynamic int8 Linear layers
    (CPU; ``speechkit.nn.int8``: weights per output channel, activations with a scale per row
    (``act_scales="row"``) or per call (``"tensor"``), all 8 bits where the CPU allows). In
    place, the float32 Linear weights are freed: a process that only decodes int8 need not hold
    both.

    The tied output projection gets an int8 copy of the token embedding too (the embedding lookup
    itself stays float32): at beam-search batch sizes reading the V x D table is most of a
    decoder step, and int8 reads a quarter of the bytes. The convolutions stay float32.
    ``keep_float``: Linear layers left in float32, by part of their name (``ffn.net.3``), and
    ``decoder.output`` for the output projection (``speechkit bench whisper-int8`` measures
    what each choice costs and keeps).
    """
    quantized = quantize_linears(model, inplace, keep_float, act_scales)
    if "decoder.output" not in keep_float:
        table = model.decoder.embed.weight.detach()  # (V, D)
        output = torch.nn.Linear(table.shape[1], table.shape[0], bias=False)
        output.weight.data.copy_(table)
        head = quantize_linears(torch.nn.Sequential(output), True, act_scales=act_scales)
        quantized.decoder.output = head[0]
    return quantized


class Transcriber:
    """A loaded Whisper model with its decoding rules: ``transcriber(waves, names)``.

    ``int8``: ``quantize_int8`` (CPU): every Linear layer and the tied output projection,
    except the layers named by ``keep_float`` (``quantize_int8``'s patterns); in place when
    ``owns_model`` (the caller gives up ``pretrained.model``, as ``load`` does), so the float32
    weights are not kept beside their int8 copy.
    ``budget``: the fraction of the decoder modules' FLOPs a gated Whisper model
    (``models/gated_whisper.py``) keeps: required for one with a gate predictor, an error for
    a model without gates (``speechkit.nn.gates.decoding_budget``; ``name`` names the model in
    its errors); each window is decoded with its own gate pattern (``decode/whisper.py``).
    ``task`` (``asr`` / ``st_eng``, from ``options.task``) and ``opt.batch_size`` are read at
    each call.
    ``step_kernel``: how a search step's few-row products run on CPU
    (``TextDecoder.set_step_kernel``): ``"half"`` (default) reads float16 copies of the decoder's
    weights, exact for Whisper's released weights (float16 values) and multiplied in float32;
    weights that float16 cannot hold run as ``"plain"``. Not with ``int8``, whose layers have
    their own kernels (``"plain"`` then).
    """

    def __init__(
        self,
        pretrained: Pretrained,
        options: TranscribeOptions | None = None,
        device: str | torch.device = "cpu",
        int8: bool = False,
        budget: float | None = None,
        name: str = "this model",
        keep_float: Collection[str] = (),
        owns_model: bool = False,
        step_kernel: StepKernel | None = None,
    ):
        if pretrained.model_type not in WHISPER_TYPES:
            raise ValueError(
                f"speechkit transcribe needs a Whisper model, got {pretrained.model_type}"
            )
        gated = pretrained.model_type == "gated_whisper"
        dynamic = gated and pretrained.model.predictor is not None
        self.budget = decoding_budget(budget, name, gated, dynamic)
        self.opt = options or TranscribeOptions()
        self.tok: WhisperTokenizer = pretrained.tokenizer
        self.device = torch.device(device)
        model = pretrained.model.to(self.device).eval()
        if keep_float and not int8:
            raise ValueError("keep_float names layers kept float32 by int8: give int8=True")
        if int8 and step_kernel not in (None, "plain"):
            raise ValueError(f"step_kernel {step_kernel!r} does not go with int8")
        step_kernel = step_kernel or ("plain" if int8 else "half")
        if int8:
            model = quantize_int8(model, inplace=owns_model, keep_float=keep_float)
        model.decoder.set_step_kernel(step_kernel)
        if self.budget is not None:
            model.budget = self.budget  # read by decoder_gates (decode/whisper.py)
        self.model = model
        self.logmel = LogMel(pretrained.features)
        self.task = "asr" if self.opt.task == "transcribe" else "st_eng"
        self.tok.task_id(self.task)  # an English-only model cannot translate: fail now
        if self.opt.language is not None:
            self.tok.lang_id(self.opt.language)  # an unknown language: fail now
        self.windows = WhisperWindowDecoder(self.model, self.tok, self.opt, self.device)
        self.segmenter = WhisperSegmenter(self.tok)

    # What benchmarks and checks reuse of the decoding set-up.
    rules = property(lambda self: self.windows.rules)
    ts_rules = property(lambda self: self.windows.ts_rules)
    search_opts = property(lambda self: self.windows.search_opts)
    ids = property(lambda self: self.windows.ids)

    @classmethod
    def load(
        cls,
        model: str | Path,
        options: TranscribeOptions | None = None,
        device: str | torch.device = "cpu",
        int8: bool = False,
        budget: float | None = None,
        keep_float: Collection[str] = (),
        step_kernel: StepKernel | None = None,
    ) -> Transcriber:
        """``model``: a packed model directory, a checkpoint ``.pt``, or a zoo name."""
        if Path(model).exists():
            pretrained = load_pretrained(model)
        else:
            from speechkit import zoo

            pretrained = zoo.load(str(model))
        return cls(pretrained, options, device, int8, budget, str(model), keep_float,
                   owns_model=True, step_kernel=step_kernel)  # fmt: skip

    def features(self, wave: np.ndarray | Tensor) -> Tensor:
        """(S,) 16 kHz samples -> (S // 160 + 1, n_mels) Whisper log-mel (faster-whisper's
        framing: 160 zero samples appended, the last frame is not content)."""
        wave = torch.as_tensor(np.asarray(wave, dtype=np.float32)).flatten()
        wave = torch.cat([wave, wave.new_zeros(HOP)])
        feats, _ = self.logmel(wave[None], torch.tensor([wave.numel()]))
        return feats[0]

    @torch.inference_mode()
    def __call__(
        self,
        waves: list,
        names: list[str] | None = None,
        languages: list[str | None] | None = None,
        tasks: list[str] | None = None,
    ) -> list[Result]:
        """waves: (S,) float arrays, 16 kHz mono. Returns one Result per wave, in order.

        languages / tasks: per wave (ISO 639-1/-3 code or None to detect; ``asr`` or
        ``st_eng``); default ``options.language`` and ``self.task`` for every wave.
        """
        names = names or [f"audio{i}" for i in range(len(waves))]
        streams = []
        for i, wave in enumerate(waves):
            lang = languages[i] if languages is not None else self.opt.language
            task = tasks[i] if tasks is not None else self.task
            # The last frame holds only the appended zeros: not content (faster-whisper).
            frames = self.features(wave)[:-1]
            streams.append(Stream(frames, len(wave) / SAMPLE_RATE, lang, task))
        longform = LongformDecoder(self.windows, self.segmenter, FRAME_RATE,
                                   batch_size=self.opt.batch_size)  # fmt: skip
        longform.decode(streams)
        return [self._result(name, s) for name, s in zip(names, streams)]

    def _result(self, name: str, stream: Stream) -> Result:
        lang_id = stream.info.get("lang_id")
        code = self.tok.id_to_token(lang_id)[2:-2] if lang_id is not None else "en"
        tokens = [t for seg in stream.segments for t in seg.tokens]
        segments = [
            Segment(round(s.start, 3), round(s.end, 3), s.text, s.tokens)
            for s in stream.segments
            if s.text
        ]
        return Result(
            name=name,
            text=self.tok.decode(tokens),
            language=WHISPER_TO_ISO639_3.get(code, code),
            language_probability=float(stream.info.get("lang_prob", 1.0)),
            segments=segments,
            tokens=tokens,
            duration=stream.duration,
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

    audio: a file path, a (S,) array, or a list of them (a path is always a file: nothing is
    run through a shell). model: zoo name or packed directory. language: ISO 639-1 or 639-3
    code; None detects it (multilingual models). Other keyword arguments: ``batch_size``,
    ``device``, ``int8``, ``budget`` (gated Whisper models; see TranscribeOptions and
    Transcriber). A missing or unreadable file raises AudioError naming it. For many calls keep
    a :class:`Transcriber`.
    """
    device, int8 = kwargs.pop("device", "cpu"), kwargs.pop("int8", False)
    budget = kwargs.pop("budget", None)
    options = TranscribeOptions(beam=beam, language=language, task=task, **kwargs)
    inputs = audio if isinstance(audio, (list, tuple)) else [audio]
    waves, names = [], []
    for i, x in enumerate(inputs):
        if isinstance(x, (str, Path)):
            waves.append(load_audio(x, SAMPLE_RATE))
            names.append(str(x))
        else:
            waves.append(np.asarray(x, dtype=np.float32))
            names.append(f"audio{i}")
    transcriber = Transcriber.load(model, options, device, int8, budget)
    return transcriber(waves, names)
