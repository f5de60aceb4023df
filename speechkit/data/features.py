"""Log-mel features computed on the fly from waveforms.

Two flavours, selected by ``FeatureConfig.kind``:

* ``fbank``: natural-log mel power spectrogram (HTK mel scale, no filter normalisation), then
  per-utterance mean/variance normalisation over the valid frames (``normalize="utterance"``).
* ``whisper``: the log-mel of OpenAI Whisper: periodic Hann window, n_fft 400, hop 160, power
  spectrum with the last frame dropped, Slaney mel filters (librosa's, as torchaudio computes
  them), ``log10(max(x, 1e-10))``, floored at ``max - 8``, then ``(x + 4) / 4``. The floor uses the maximum of each utterance's own
  valid frames (Whisper uses the maximum over its 30 s padded window; for unpadded audio the two
  agree).

* ``espnet``: ESPnet's ``DefaultFrontend`` (Stft + LogMel): periodic Hann window of
  ``win_length`` samples centred in ``n_fft`` (OWSM: 400 in 512, hop 160), power spectrum, Slaney
  mel filters (as librosa's, 0 Hz to Nyquist), natural ``log(max(x, 1e-10))``. No normalisation here
  (``normalize: none``): ESPnet's global MVN lives in the model (``S2TConfig.global_mvn``).

* ``codec``: not log-mel but the codes of a trained speech codec (``codec``: its packed
  directory; ``codec_codebooks``: how many of its codebooks), computed by
  ``speechkit.codec.CodecFrontEnd``, which the ``s2t`` task passes to the dataset: frames of
  ``hop_length`` = the codec's hop (320 samples, 20 ms), values are code ids as float32.

Framing: centred STFT with reflect padding, so a wave of S samples gives ``S // hop + 1`` frames
(``fbank``) or ``S // hop`` frames (``whisper``, which drops the last one). Each utterance is
transformed on its own valid samples, so padding never leaks into the features.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

import torch
import torchaudio
from torch import nn

from speechkit.config import ConfigError

__all__ = ["WHISPER_WINDOW_FRAMES", "FeatureConfig", "LogMel", "WhisperFrontEnd", "num_frames"]

logger = logging.getLogger(__name__)

WHISPER_WINDOW_FRAMES = 3000  # 30 s of 10 ms frames: Whisper's encoder window
_WHISPER_HOP = 160  # samples per frame at 16 kHz


@dataclasses.dataclass
class FeatureConfig:
    """Feature extraction settings; units are samples (n_fft, hop_length) and Hz."""

    kind: Literal["fbank", "whisper", "espnet", "codec"] = "fbank"
    n_mels: int = 80
    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    normalize: Literal["utterance", "none"] = "utterance"
    win_length: int = 0  # analysis window in samples, centred in n_fft; 0 = n_fft
    codec: str = ""  # kind codec: packed codec directory (a path, often given with --set)
    codec_codebooks: int = 0  # kind codec: codebooks used (e.g. 1 = the first alone)

    def __post_init__(self) -> None:
        if self.n_mels <= 0 or self.n_fft <= 0 or self.hop_length <= 0:
            raise ConfigError("features: n_mels, n_fft and hop_length must be positive")
        if not 0 <= self.win_length <= self.n_fft:
            raise ConfigError(
                f"features: win_length must lie in [0, n_fft={self.n_fft}], got {self.win_length}"
            )
        if self.kind == "codec" and self.codec_codebooks < 1:
            raise ConfigError("features: kind 'codec' needs codec_codebooks >= 1")
        if self.kind == "whisper":
            if self.n_mels not in (80, 128):
                raise ConfigError(
                    f"features: whisper log-mel needs n_mels 80 or 128, got {self.n_mels}"
                )
            if (self.n_fft, self.hop_length, self.sample_rate) != (400, 160, 16000):
                raise ConfigError(
                    "features: kind 'whisper' requires n_fft 400, hop_length 160, sample_rate 16000"
                )


def num_frames(num_samples: torch.Tensor | int, cfg: FeatureConfig) -> torch.Tensor | int:
    """Number of feature frames for a wave of ``num_samples`` samples (see module docstring)."""
    frames = num_samples // cfg.hop_length + 1
    return frames - 1 if cfg.kind == "whisper" else frames


class LogMel(nn.Module):
    """Waveforms -> log-mel features, ``forward(wave (B, S), wave_lens (B,)) -> (B, T, F), (B,)``.

    ``wave`` is float audio at ``cfg.sample_rate`` (zero-padded past ``wave_lens`` samples);
    features past ``feat_lens`` frames are zero.
    """

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        self.win_length = cfg.win_length or cfg.n_fft
        self.register_buffer(
            "window", torch.hann_window(self.win_length, periodic=True), persistent=False
        )
        # Whisper and ESPnet use librosa's Slaney filters (Slaney mel scale, area-normalised);
        # torchaudio's give them within 2e-7 (float32 arithmetic), and whisper-tiny.en's tokens
        # on 42 held-out utterances were identical with either. librosa's filters module would
        # cost 127 MiB resident and 0.9 s at start-up (egs/phrasebook/whisper1/RESULTS.md).
        slaney = cfg.kind in ("whisper", "espnet")
        mel = torchaudio.functional.melscale_fbanks(
            n_freqs=cfg.n_fft // 2 + 1,
            f_min=0.0,
            f_max=cfg.sample_rate / 2,
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            norm="slaney" if slaney else None,
            mel_scale="slaney" if slaney else "htk",
        ).T.contiguous()  # (F, n_fft//2+1)
        self.register_buffer("mel", mel, persistent=False)

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        """One utterance (S,) -> (T, F)."""
        pad = self.cfg.n_fft // 2
        frames = num_frames(wave.numel(), self.cfg)
        if wave.numel() <= pad:  # reflect padding needs more samples than the pad width
            wave = torch.nn.functional.pad(wave, (0, pad + 1 - wave.numel()))
        spec = torch.stft(
            wave.float(),
            self.cfg.n_fft,
            self.cfg.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (n_fft//2+1, T)
        power = spec.abs() ** 2
        if self.cfg.kind == "whisper":
            power = power[:, :-1]
        power = power[:, :frames]
        mel = self.mel @ power  # (F, T)
        if self.cfg.kind == "whisper":
            logmel = torch.clamp(mel, min=1e-10).log10()
            logmel = torch.maximum(logmel, logmel.max() - 8.0)
            return ((logmel + 4.0) / 4.0).T
        logmel = torch.clamp(mel, min=1e-10).log().T  # (T, F)
        if self.cfg.normalize == "utterance":
            mean = logmel.mean(dim=0, keepdim=True)
            std = logmel.std(dim=0, keepdim=True, unbiased=False)
            logmel = (logmel - mean) / (std + 1e-5)
        return logmel

    def forward(
        self, wave: torch.Tensor, wave_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects wave (B, S), got shape {tuple(wave.shape)}")
        feats = [self._one(wave[i, : int(n)]) for i, n in enumerate(wave_lens.tolist())]
        feat_lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long, device=wave.device)
        out = wave.new_zeros(len(feats), int(feat_lens.max()) if feats else 0, self.cfg.n_mels)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return out, feat_lens


class WhisperFrontEnd(nn.Module):
    """``(wave (B, S), wave_lens (B,)) -> feats (B, T, n_mels), feat_lens (B,)`` the way Whisper
    decoding (``speechkit.inference``) computes them, for training on Whisper models.

    Each waveform gets 160 zero samples appended, then one Whisper log-mel over it, of which the
    first ``S // 160`` frames are content. ``pad_to_window``: the content is zero-padded *in
    log-mel space* to 3000 frames (30 s) and T = ``feat_lens`` = 3000 for every row, exactly what
    the encoder sees at decoding time; else T is the longest content and ``feat_lens`` counts
    content frames (about 10x cheaper for 3 s utterances, but mismatched with pretraining).
    """

    def __init__(self, cfg: FeatureConfig, pad_to_window: bool):
        super().__init__()
        if cfg.kind != "whisper":
            raise ValueError(f"WhisperFrontEnd needs FeatureConfig(kind='whisper'), got {cfg.kind}")
        self.logmel = LogMel(cfg)
        self.pad_to_window = pad_to_window

    def forward(self, wave: torch.Tensor, wave_lens: torch.Tensor):
        # The appended 160 zeros give the last content frame a full right context, as in
        # faster-whisper; the frame they add is not content. (Rows are zero-padded past
        # wave_lens, so each row's 160 samples past its end are zeros.)
        wave = torch.nn.functional.pad(wave, (0, _WHISPER_HOP))
        feats, _ = self.logmel(wave, wave_lens + _WHISPER_HOP)
        content = torch.clamp(wave_lens // _WHISPER_HOP, max=WHISPER_WINDOW_FRAMES)  # (B,)
        if bool((wave_lens > WHISPER_WINDOW_FRAMES * _WHISPER_HOP).any()):
            logger.warning("an utterance is longer than 30 s: only its first 30 s are used")
        width = WHISPER_WINDOW_FRAMES if self.pad_to_window else int(content.max())
        out = feats.new_zeros(feats.size(0), width, feats.size(2))
        for i, n in enumerate(content.tolist()):
            out[i, :n] = feats[i, :n]
        lens = torch.full_like(content, WHISPER_WINDOW_FRAMES) if self.pad_to_window else content
        return out, lens
