"""The log-mel spectrogram shared by the TTS acoustic model and its vocoder.

The acoustic model (``speechkit.models.tts``) predicts these frames; the vocoder turns them back
into a wave. Both sides compute their training targets with :func:`mel_spectrogram` and
:class:`TTSMelConfig`, so the two can be trained apart and still fit together. Keep this API
stable: a checkpoint stores its ``TTSMelConfig`` as a dict (``dataclasses.asdict``).

The transform (HiFi-GAN / Vocos convention):

* centred STFT with reflect padding of ``n_fft // 2`` on each side, periodic Hann window of
  ``win_length`` samples: a wave of ``S`` samples gives ``S // hop_length + 1`` frames
  (:func:`num_frames`); frame ``t`` is centred on sample ``t * hop_length``;
* magnitude (not power) spectrum, Slaney-normalised mel filters on the Slaney mel scale from
  ``f_min`` to ``f_max`` Hz;
* natural log of ``max(mel, clamp)``: silence is ``log(1e-5) ~= -11.5``.

Units: ``sample_rate`` in Hz, ``n_fft``/``hop_length``/``win_length`` in samples; one frame is
``hop_length / sample_rate`` seconds (16 ms at the defaults).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import torch
import torchaudio
from torch import Tensor, nn

__all__ = ["LogMelSpectrogram", "TTSMelConfig", "griffin_lim", "mel_spectrogram", "num_frames"]


@dataclasses.dataclass(frozen=True)
class TTSMelConfig:
    """Settings of the TTS log-mel (module docstring). The phrasebook's audio is 16 kHz."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    clamp: float = 1e-5

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.n_fft, self.hop_length, self.win_length, self.n_mels) <= 0:
            raise ValueError("TTSMelConfig: sample_rate, n_fft, hop, win, n_mels must be > 0")
        if self.win_length > self.n_fft:
            raise ValueError(f"TTSMelConfig: win_length {self.win_length} > n_fft {self.n_fft}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"TTSMelConfig: need 0 <= f_min < f_max <= sample_rate / 2, got "
                f"{self.f_min}, {self.f_max} at {self.sample_rate} Hz"
            )

    @property
    def frame_seconds(self) -> float:
        """Duration of one frame hop in seconds."""
        return self.hop_length / self.sample_rate

    @property
    def silence(self) -> float:
        """The log-mel value of digital silence, ``log(clamp)``."""
        return math.log(self.clamp)


def num_frames(samples: int | Tensor, cfg: TTSMelConfig = TTSMelConfig()) -> int | Tensor:
    """Mel frames of a wave of ``samples`` samples (int, or a tensor of lengths)."""
    return samples // cfg.hop_length + 1


class LogMelSpectrogram(nn.Module):
    """``forward(wave (B, S) or (S,)) -> log-mel (B, n_mels, S // hop + 1)``, float32."""

    def __init__(self, cfg: TTSMelConfig = TTSMelConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=1.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.dim() != 2:
            raise ValueError(
                f"mel_spectrogram: expected a wave (B, S), got shape {tuple(wave.shape)}"
            )
        mel = self.mel(wave.float())  # (B, n_mels, frames)
        return torch.log(mel.clamp(min=self.cfg.clamp))


@lru_cache(maxsize=8)
def _transform(cfg: TTSMelConfig, device: str) -> LogMelSpectrogram:
    return LogMelSpectrogram(cfg).to(device)


def mel_spectrogram(wave: Tensor, cfg: TTSMelConfig = TTSMelConfig()) -> Tensor:
    """Log-mel of ``wave`` (B, S) or (S,), samples at ``cfg.sample_rate`` in [-1, 1]
    -> (B, n_mels, S // hop_length + 1), natural log, floored at ``log(cfg.clamp)``.

    Differentiable (usable as a loss on generated waves). Rows of a padded batch are framed
    over the padding too: take ``num_frames(length)`` frames of each row.
    """
    return _transform(cfg, str(wave.device))(wave)


def griffin_lim(log_mel: Tensor, cfg: TTSMelConfig = TTSMelConfig(), n_iter: int = 32) -> Tensor:
    """A wave from a log-mel without a trained vocoder: the mel filters inverted by least
    squares (non-negative), then Griffin-Lim phase reconstruction (torchaudio). An honest
    baseline: intelligible but buzzy; the neural vocoder is what synthesis should use.

    ``log_mel`` (B, M, T) or (M, T) -> (B, (T - 1) * hop_length) float32 samples."""
    if log_mel.dim() == 2:
        log_mel = log_mel.unsqueeze(0)
    fb = torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, "slaney", "slaney"
    ).to(log_mel.device)  # (F, M)
    mel = log_mel.float().exp().transpose(1, 2)  # (B, T, M)
    magnitude = torch.linalg.lstsq(fb.T.expand(mel.size(0), -1, -1), mel.transpose(1, 2)).solution
    magnitude = magnitude.clamp(min=0)  # (B, F, T)
    gl = torchaudio.transforms.GriffinLim(
        n_fft=cfg.n_fft,
        n_iter=n_iter,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        power=1.0,
    ).to(log_mel.device)
    return gl(magnitude)
