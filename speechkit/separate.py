"""Query-conditioned extraction as a library call: the front end that runs before recognition.

    ex = Extractor.from_dir("exp/sep_supervised", query="speech")        # a class
    ex = Extractor.from_dir(model_dir, text="the voice over the music")   # a description
    ex = Extractor.from_dir(model_dir, enroll=enroll_wave)                # a speaker, 16 kHz
    clean = ex(wave, sample_rate=16000)   # float32 (samples,) or (channels, samples) -> (samples,)
    ex.file("in.wav", "out.wav")          # any length: chunked, bounded memory
    ex = Extractor.from_dir(model_dir, query="speech", remix=0.3)  # for a recogniser

``remix`` r adds the input back: the output is (1 - r) * estimate + r * input. Recognisers
trained on noisy speech (Whisper) can suffer more from a separator's artifacts than from the
interference it removes; a little of the observation masks those artifacts (observation adding,
Iwamoto et al., Interspeech 2022). For the separator's mask M it is the mask (1 - r) M + r on
the same STFT. r = 0 (the default) is the pure estimate; RESULTS.md of ``egs/phrasebook/enh1``
measures the WER over r.

Input audio of another sample rate is resampled to the model's (16 kHz) and the result back to
the input's rate; several channels are averaged to mono (with a log line). A query class the
model does not know, an enrollment clip that is silent or shorter than 1 s, or an empty input
raise ``ValueError`` with the reason.

Long recordings are processed in chunks of ``chunk_s`` seconds that overlap by ``overlap_s``
(by default twice the model's context, ``SeparatorConfig.receptive_field_s``, plus 0.25 s)
and are cross-faded over 0.25 s in the middle of the overlap. Every layer of the separator is
frame-local and chunks start on STFT frame boundaries, so where two chunks meet each sees what
the whole recording would have shown it, and the chunked output equals the unchunked one up to
float rounding. ``file()`` streams from disk to disk: peak memory depends on ``chunk_s``, not on the
length of the recording.

``load_trained(path, model_type)`` loads a trained separator or tagger from an experiment
directory (``model_avg.pt``, else its newest checkpoint) or a checkpoint file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from speechkit.checkpoint import load_checkpoint
from speechkit.config import from_dict
from speechkit.models import MODEL_CONFIGS, build_model
from speechkit.models.query_encoders import SPEAKER_DIM, TEXT_DIM, SentenceEncoder, SpeakerEncoder
from speechkit.models.separation import QUERY_KINDS, Separator

__all__ = ["Extractor", "load_trained", "remix"]

logger = logging.getLogger(__name__)
_FADE_S = 0.25  # cross-fade between chunks, in the middle of their overlap


def _checkpoint_file(path: Path) -> Path:
    if path.is_file():
        return path
    if (path / "model_avg.pt").is_file():
        return path / "model_avg.pt"
    ckpts = sorted((path / "checkpoints").glob("step-*.pt"), key=lambda p: int(p.stem[5:]))
    if not ckpts:
        raise FileNotFoundError(f"{path}: no model_avg.pt and no checkpoints/step-*.pt")
    return ckpts[-1]


def load_trained(path: str | Path, model_type: str | tuple[str, ...]) -> nn.Module:
    """The trained model at ``path``, in eval mode; ``model_type``: the type it must be
    (``separator``, ``tagger``, ``convtasnet``) or a tuple of the types accepted."""
    file = _checkpoint_file(Path(path))
    ckpt = load_checkpoint(file)
    config = ckpt.get("config") or {}
    found = config.get("model_type")
    accepted = (model_type,) if isinstance(model_type, str) else tuple(model_type)
    if found not in accepted:
        raise ValueError(
            f"{file} holds a {found or 'different'} model, not a {' or '.join(accepted)}"
        )
    cfg = from_dict(MODEL_CONFIGS[found], config["model"], source=str(file))
    model = build_model(cfg, found)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def remix(estimate: np.ndarray, mixture: np.ndarray, share: float) -> np.ndarray:
    """(1 - share) * estimate + share * mixture: the input added back (module docstring)."""
    return (1.0 - share) * estimate + share * mixture if share else estimate


def _resample(wave: np.ndarray, orig: int, target: int) -> np.ndarray:
    if orig == target:
        return wave
    import soxr

    return soxr.resample(wave, orig, target).astype(np.float32)


class Extractor:
    """Runs a ``Separator`` with one fixed query over waves or files (module docstring).

    ``query``: a class name of the model; ``text``: a description; ``enroll``: 16 kHz mono
    float wave (samples,) of the target speaker. Exactly one of them.
    """

    def __init__(
        self,
        model: Separator,
        query: str | None = None,
        text: str | None = None,
        enroll: np.ndarray | None = None,
        chunk_s: float = 8.0,
        overlap_s: float | None = None,
        remix: float = 0.0,
    ) -> None:
        if not 0.0 <= remix <= 1.0:
            raise ValueError(f"remix must lie in [0, 1] (the input's share), got {remix}")
        self.remix = remix
        given = [x is not None for x in (query, text, enroll)]
        if sum(given) != 1:
            raise ValueError("give exactly one query: a class (query), a text, or an enrollment")
        self.model = model.eval()
        self.sample_rate = model.cfg.sample_rate
        context = model.cfg.receptive_field_s
        self.overlap_s = 2 * context + _FADE_S if overlap_s is None else overlap_s
        if chunk_s <= 2 * self.overlap_s:
            raise ValueError(
                f"chunk_s ({chunk_s}) must exceed twice the overlap ({self.overlap_s})"
            )
        self.chunk_s = chunk_s
        self.kind = QUERY_KINDS.index("class" if query else "text" if text else "speaker")
        self.class_id = model.class_index(query) if query else 0
        self.text_vec = torch.zeros(1, TEXT_DIM)
        self.speaker_vec = torch.zeros(1, SPEAKER_DIM)
        if text is not None:
            if not text.strip():
                raise ValueError("the text query is empty")
            self.text_vec = SentenceEncoder()([text])
        if enroll is not None:
            enroll = np.asarray(enroll, np.float32)
            if enroll.ndim != 1:
                raise ValueError(f"enrollment must be mono (samples,), got shape {enroll.shape}")
            self.speaker_vec = SpeakerEncoder()(enroll)[None]

    @classmethod
    def from_dir(cls, path: str | Path, **kwargs) -> Extractor:
        """An extractor over the separator trained in ``path`` (see ``load_trained``)."""
        return cls(load_trained(path, "separator"), **kwargs)

    @torch.no_grad()
    def _run(self, wave: np.ndarray) -> np.ndarray:
        """One pass of the model over a 16 kHz mono chunk (samples,)."""
        n = len(wave)
        # the STFT's centred frames need at least half a window of signal
        wave = np.pad(wave, (0, max(0, self.model.cfg.n_fft - n)))
        x = torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None]
        kind = torch.tensor([self.kind])
        est = self.model(x, kind, torch.tensor([self.class_id]), self.text_vec, self.speaker_vec)
        est = est[0, :n].numpy()
        # Per chunk is the same as after overlap-add: the cross-fade is linear in its inputs.
        return remix(est, wave[:n], self.remix)

    def _mono(self, wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, np.float32)
        if wave.ndim == 2:
            if wave.shape[0] > 1:
                logger.info("averaging %d channels to mono", wave.shape[0])
            wave = wave.mean(0)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"expected audio (samples,) or (channels, samples), got {wave.shape}")
        if not np.isfinite(wave).all():
            raise ValueError("the input audio holds NaN or infinite samples")
        return wave

    def __call__(self, wave: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        """The queried source of ``wave`` ((samples,) or (channels, samples) at ``sample_rate``),
        mono float32 (samples,) at ``sample_rate``."""
        wave = self._mono(wave)
        x = _resample(wave, sample_rate, self.sample_rate)
        out = np.concatenate(list(self.stream([x])) or [np.zeros(0, np.float32)])
        out = _resample(out, self.sample_rate, sample_rate)
        return _fit(out, len(wave))

    def stream(self, blocks):
        """Chunked overlap-add over an iterable of 16 kHz mono blocks (any sizes); yields the
        output in pieces whose concatenation has the input's length. Holds about two chunks."""
        # Chunk starts on STFT frame boundaries, so a chunk's frames are the whole input's.
        step = self.model.cfg.hop
        chunk = int(self.chunk_s * self.sample_rate) // step * step
        overlap = -(-int(self.overlap_s * self.sample_rate) // step) * step
        hop = chunk - overlap
        fade_in = _fade(overlap, int(_FADE_S * self.sample_rate))
        buf = np.zeros(0, np.float32)  # input from the start of the current chunk
        tail = np.zeros(0, np.float32)  # previous chunk's output over the overlap
        it, exhausted = iter(blocks), False
        while True:
            while len(buf) < chunk and not exhausted:
                block = next(it, None)
                if block is None:
                    exhausted = True
                else:
                    buf = np.concatenate([buf, np.asarray(block, np.float32)])
            if not len(buf):
                return
            out = self._run(buf[:chunk])
            n = min(len(tail), len(out))
            out[:n] = tail[:n] * (1 - fade_in[:n]) + out[:n] * fade_in[:n]
            if exhausted and len(buf) <= chunk:
                yield out
                return
            yield out[:hop]
            tail, buf = out[hop:], buf[hop:]

    def file(self, src: str | Path, dst: str | Path, block_s: float = 30.0) -> dict:
        """Extracts from audio file ``src`` into ``dst`` (same rate, mono) in bounded memory.
        Returns {"seconds": input duration, "sample_rate": its rate}."""
        info = sf.info(str(src))
        if info.frames == 0:
            raise ValueError(f"{src}: no audio")
        if info.channels > 1:
            logger.info("%s: averaging %d channels to mono", src, info.channels)
        block = int(block_s * info.samplerate)
        sr = info.samplerate
        # Streaming resamplers: block edges leave no seams; lengths come out exact at the end.
        down = _Stream(sr, self.sample_rate)
        up = _Stream(self.sample_rate, sr)

        def blocks():
            for data in sf.blocks(str(src), blocksize=block, dtype="float32", always_2d=True):
                yield down(data.mean(1))
            yield down(np.zeros(0, np.float32), last=True)

        written = 0
        with sf.SoundFile(str(dst), "w", sr, 1, subtype="PCM_16") as out:
            for piece in self.stream(blocks()):
                piece = up(piece)[: info.frames - written]
                out.write(np.clip(piece, -1, 1))
                written += len(piece)
            tail = up(np.zeros(0, np.float32), last=True)[: info.frames - written]
            out.write(np.clip(np.pad(tail, (0, info.frames - written - len(tail))), -1, 1))
        return {"seconds": info.frames / info.samplerate, "sample_rate": info.samplerate}


class _Stream:
    """A streaming resampler from ``orig`` to ``target`` Hz (identity when they are equal)."""

    def __init__(self, orig: int, target: int) -> None:
        import soxr

        self.rs = None if orig == target else soxr.ResampleStream(orig, target, 1, "float32")

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.rs is None:
            return np.asarray(x, np.float32)
        return self.rs.resample_chunk(np.asarray(x, np.float32), last=last)


def _fade(overlap: int, ramp: int) -> np.ndarray:
    """Weights (overlap,) of the next chunk: 0, then a linear ramp of ``ramp`` samples centred
    in the overlap, then 1. Around the centre both chunks are at least their context away from
    their own edges, so both are exact there and the blend is too."""
    ramp = min(ramp, overlap)
    before = (overlap - ramp) // 2
    w = np.zeros(overlap, np.float32)
    w[before : before + ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
    w[before + ramp :] = 1.0
    return w


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    """``wave`` cut or zero-padded to ``n`` samples (resampling may be a sample off)."""
    if len(wave) >= n:
        return wave[:n]
    return np.pad(wave, (0, n - len(wave)))
