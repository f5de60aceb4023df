"""Robust audio loading for one cut: mono float32 at a fixed sample rate, or a clear error.

Whatever goes wrong (unreadable or missing file, truncated file, no samples, NaN/inf samples)
surfaces as one exception type, :class:`AudioError`, that names the cut and the file, so the
dataset can drop the cut and count it instead of crashing a training run.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torchaudio

__all__ = ["AudioError", "load_audio"]

logger = logging.getLogger(__name__)

# A file may be shorter than its manifest claims by this much (seconds) before it counts as
# truncated; codecs and resampling routinely lose a few samples.
_TRUNCATION_TOLERANCE_S = 0.05


class AudioError(RuntimeError):
    """A cut whose audio cannot be used."""

    def __init__(self, cut_id: str, path: str, reason: str):
        super().__init__(f"cut {cut_id!r} ({path}): {reason}")
        self.cut_id = cut_id
        self.path = path
        self.reason = reason


def _source_path(cut) -> str:
    """The file (or a description of the source) behind a cut, for error messages."""
    recording = getattr(cut, "recording", None)
    if recording is None or not recording.sources:
        return "<no recording>"
    return ", ".join(str(s.source) for s in recording.sources)


def load_audio(cut, sample_rate: int = 16000) -> np.ndarray:
    """Loads ``cut``'s audio as a mono float32 array of shape (S,) at ``sample_rate`` Hz.

    All channels of the underlying recording are averaged to mono; audio at another rate is
    resampled. Raises :class:`AudioError` when the audio cannot be used.
    """
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
    if audio.ndim == 1:
        audio = audio[None]
    if audio.size == 0:
        raise AudioError(cut.id, path, "no samples")
    expected = cut.duration * recording.sampling_rate
    if audio.shape[1] < expected - _TRUNCATION_TOLERANCE_S * recording.sampling_rate:
        raise AudioError(
            cut.id,
            path,
            f"truncated: {audio.shape[1]} samples, manifest says {expected:.0f}",
        )
    if not np.isfinite(audio).all():
        raise AudioError(cut.id, path, "NaN or infinite samples")
    mono = audio.mean(axis=0)
    if recording.sampling_rate != sample_rate:
        mono = torchaudio.functional.resample(
            torch.from_numpy(mono), recording.sampling_rate, sample_rate
        ).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)
