"""Audio in, one way: mono float32 at a fixed sample rate, or an :class:`AudioError` saying why not.

Every reader of audio in speechkit (the training dataset, ``speechkit decode``,
``speechkit transcribe``, ``speechkit.transcribe()``, Kaldi data directories) goes through
:func:`load_audio` (a lhotse cut or a file path) or :func:`decode_audio_bytes` (the bytes of an
audio file, e.g. what a Kaldi ``wav.scp`` pipe wrote), so they agree on what counts as usable
audio and on how it is brought to the model's rate:

* several channels are averaged to mono;
* another sample rate is converted by :func:`resample` (soxr, high quality);
* no samples, NaN or infinite samples, a missing, empty or unreadable file, or a cut whose file
  is shorter than its manifest says, raise :class:`AudioError` naming the input and the reason,
  so a caller can skip that input and go on.

A path is only ever opened as a file: a name ending in ``|`` is a (probably missing) file, never a
command. Shell pipes belong to Kaldi ``wav.scp`` files and are run only by
:mod:`speechkit.data.kaldi`, when the caller allows it.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "decode_audio_bytes", "load_audio", "open_recording", "resample"]

logger = logging.getLogger(__name__)

# A file may be shorter than its manifest claims by this much (seconds) before it counts as
# truncated; codecs and resampling routinely lose a few samples.
_TRUNCATION_TOLERANCE_S = 0.05


class AudioError(ValueError):
    """Audio that cannot be used. ``name``: the input (a cut id, an utterance, a file name);
    ``path``: the file or command behind it (may equal ``name``); ``reason``: what is wrong."""

    def __init__(self, name: str, path: str, reason: str):
        where = name if not path or path == name else f"{name} ({path})"
        super().__init__(f"{where}: {reason}")
        self.name, self.path, self.reason = name, path, reason

    @property
    def cut_id(self) -> str:
        """The cut (or input) name; kept for callers that read it from dataset errors."""
        return self.name


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """(S,) float32 at ``orig_sr`` Hz -> (ceil(S * target_sr / orig_sr),) float32 at
    ``target_sr`` Hz (soxr, high quality; the length rounded up, padded with zeros if needed)."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(wave, dtype=np.float32)
    out = soxr.resample(np.asarray(wave, dtype=np.float32), orig_sr, target_sr, quality="HQ")
    n = int(np.ceil(wave.shape[0] * target_sr / orig_sr))
    # soxr rounds the length its own way; fix it so lengths only depend on the two rates.
    out = out[:n] if out.shape[0] >= n else np.pad(out, (0, n - out.shape[0]))
    return np.ascontiguousarray(out, dtype=np.float32)


def _to_mono(audio: np.ndarray, sr: int, sample_rate: int, name: str, path: str) -> np.ndarray:
    """(C, S) samples at ``sr`` -> (S',) mono float32 at ``sample_rate``, checked."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.size == 0:
        raise AudioError(name, path, "no samples")
    if not np.isfinite(audio).all():
        raise AudioError(name, path, "NaN or infinite samples")
    if audio.shape[0] > 1:
        logger.debug("%s: mixing %d channels down to mono", name, audio.shape[0])
    mono = audio.mean(axis=0)
    if sr != sample_rate:
        logger.debug("%s: resampling %d Hz -> %d Hz", name, sr, sample_rate)
        mono = resample(mono, sr, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def decode_audio_bytes(
    data: bytes, name: str, sample_rate: int = 16000, path: str = ""
) -> np.ndarray:
    """The contents of an audio file (any format libsndfile reads) -> (S,) float32 mono at
    ``sample_rate`` Hz. Raises :class:`AudioError` naming ``name`` (and ``path``)."""
    if not data:
        raise AudioError(name, path, "empty file (0 bytes)")
    try:
        audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # (S, C)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(name, path, f"not a readable audio file ({e})") from e
    return _to_mono(audio.T, sr, sample_rate, name, path)


def _load_file(path: Path, sample_rate: int, name: str) -> np.ndarray:
    if not path.is_file():
        raise AudioError(name, str(path), f"no such file {path}")
    return decode_audio_bytes(path.read_bytes(), name, sample_rate, str(path))


def open_recording(path: str | Path, recording_id: str | None = None):
    """A lhotse ``Recording`` of an audio file (its header is read, not its samples), so it can be
    decoded like any cut. Raises :class:`AudioError` for a missing, empty or unreadable file."""
    from lhotse import Recording

    path = Path(path)
    name = recording_id or str(path)
    if not path.is_file():
        raise AudioError(name, str(path), f"no such file {path}")
    if path.stat().st_size == 0:
        raise AudioError(name, str(path), "empty file (0 bytes)")
    try:
        return Recording.from_file(path, recording_id=name)
    except Exception as e:  # lhotse tries several backends, each with its own error type
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise AudioError(name, str(path), f"not a readable audio file ({first_line})") from e


def _source_path(cut) -> str:
    """The file (or a description of the source) behind a cut, for error messages."""
    recording = getattr(cut, "recording", None)
    if recording is None or not recording.sources:
        return "<no recording>"
    return ", ".join(str(s.source) for s in recording.sources)


def _load_cut(cut, sample_rate: int) -> np.ndarray:
    path = _source_path(cut)
    recording = getattr(cut, "recording", None)
    if recording is None:
        raise AudioError(cut.id, path, "cut has no recording")
    try:
        audio = recording.load_audio(offset=cut.start, duration=cut.duration)  # (C, S)
    except Exception as e:  # soundfile, ffmpeg and lhotse all raise their own types
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        raise AudioError(cut.id, path, f"unreadable audio: {type(e).__name__}: {first_line}") from e
    audio = np.asarray(audio, dtype=np.float32)
    expected = cut.duration * recording.sampling_rate
    got = audio.shape[-1] if audio.ndim else 0
    if audio.size and got < expected - _TRUNCATION_TOLERANCE_S * recording.sampling_rate:
        raise AudioError(cut.id, path, f"truncated: {got} samples, manifest says {expected:.0f}")
    return _to_mono(audio, recording.sampling_rate, sample_rate, cut.id, path)


def load_audio(source, sample_rate: int = 16000, name: str | None = None) -> np.ndarray:
    """Loads a lhotse cut's audio, or an audio file, as a mono float32 array (S,) at
    ``sample_rate`` Hz (see the module docstring). ``source``: a lhotse ``Cut``, or a path (str or
    Path; always a file, never a command). ``name``: how errors name a file (default: the path).
    Raises :class:`AudioError` when the audio cannot be used."""
    if isinstance(source, (str, Path)):
        return _load_file(Path(source), sample_rate, name or str(source))
    return _load_cut(source, sample_rate)
