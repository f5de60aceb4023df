"""A frame-level neural vocoder: log-mel -> amplitude and phase spectra -> inverse STFT.

The method of Vocos (Siuzdak, arXiv 2306.00814) and APNet (Ai & Ling, arXiv 2305.07952): instead
of upsampling a mel spectrogram to the sample rate through transposed convolutions (HiFi-GAN),
every layer runs at the *frame* rate (62.5 frames a second at 16 kHz, hop 256), and the network
predicts, per frame, the STFT it would take to reproduce the wave: a log-amplitude spectrum and
a phase spectrum. ``torch.istft`` (an FFT and overlap-add) turns them into samples. The cost per
second of audio is that of a small frame-rate network, hence the speed on CPU.

Layout, top to bottom:

    mel (B, n_mels, T) -> Conv1d embedding (kernel 7) -> (B, dim, T)
        -> ``layers`` ConvNeXt blocks (depthwise conv 7, LayerNorm, pointwise dim -> 3 dim -> dim,
           GELU, layer scale, residual) -> LayerNorm
        -> amplitude head: Linear dim -> F            log |X|        (B, F, T), F = n_fft/2 + 1
        -> phase head:     Linear dim -> 2F: (R, I),  phase = atan2(I, R)   (B, F, T), radians
        -> X = exp(log|X|) * (R + iI) / |R + iI| -> torch.istft -> wave (B, T * hop)

The phase is APNet's "parallel estimation": two unconstrained outputs read as a point in the
plane, whose angle is the phase, so the network never has to produce a value that wraps at pi.
The synthesised spectrum uses the unit vector ``(R + iI) / |R + iI|`` (equal to
``exp(i atan2(I, R))``, with a gradient that stays finite near the origin, and cheaper: synthesis
never forms the angle, which only the training losses need). The log amplitude is
clamped at ``max_log_amp`` before ``exp``, as in Vocos, so an early outlier cannot overflow.

Frames and samples: frame ``t`` is centred on sample ``t * hop`` (``torch.stft(center=True)``,
the convention of the mel front end), so ``T`` frames give exactly ``T * hop`` samples (the last
``hop`` samples are covered by the last frame's window). A wave of ``S`` samples has
``S // hop + 1`` mel frames; its vocoded copy is trimmed to ``S``.

    voc = Vocoder(VocoderConfig())
    wave = voc(mel)                              # (B, n_mels, T) -> (B, T * hop)
    out = voc.spectra(mel)                       # log amplitude, phase, complex spectrum (B, F, T)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.nn.convnext import ConvNeXtBlock

__all__ = ["Spectra", "Vocoder", "VocoderConfig"]


@dataclass
class VocoderConfig:
    """Shapes of the vocoder.

    sample_rate: Hz of the waves. n_fft, hop, win: of the synthesis STFT (Hann window of ``win``
    samples), in samples; ``hop`` must equal the mel front end's hop, so one mel frame is one
    STFT frame. n_mels: mel bands of the input. dim: width of the backbone. layers: ConvNeXt
    blocks. ffn_mult: width of each block's pointwise layers, in multiples of ``dim``.
    kernel: of the depthwise convolutions (odd). max_log_amp: clamp of the predicted log
    amplitude before ``exp`` (natural log).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    win: int = 1024
    n_mels: int = 80
    dim: int = 256
    layers: int = 8
    ffn_mult: int = 3
    kernel: int = 7
    max_log_amp: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.hop <= self.win <= self.n_fft:
            raise ConfigError(
                f"vocoder: 0 < hop <= win <= n_fft needed, got hop {self.hop}, win {self.win}, "
                f"n_fft {self.n_fft}"
            )
        if self.dim < 1 or self.layers < 1 or self.n_mels < 1 or self.ffn_mult < 1:
            raise ConfigError("vocoder: dim, layers, n_mels and ffn_mult must be >= 1")
        if self.kernel % 2 != 1:
            raise ConfigError(f"vocoder.kernel must be odd (same padding), got {self.kernel}")

    @property
    def freq_bins(self) -> int:
        """STFT bins per frame: n_fft // 2 + 1."""
        return self.n_fft // 2 + 1


@dataclass
class Spectra:
    """What the heads predict for a mel (B, n_mels, T): ``log_amp`` (B, F, T) natural-log
    amplitude, ``phase`` (B, F, T) radians in (-pi, pi], ``spec`` (B, F, T) complex STFT."""

    log_amp: Tensor
    phase: Tensor
    spec: Tensor


class Vocoder(nn.Module):
    """Log-mel (B, n_mels, T) -> wave (B, T * hop) (module docstring)."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel, padding=cfg.kernel // 2)
        self.norm_in = nn.LayerNorm(cfg.dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.ffn_mult, cfg.kernel, 1.0 / cfg.layers)
            for _ in range(cfg.layers)
        )
        self.norm_out = nn.LayerNorm(cfg.dim)
        self.amp_head = nn.Linear(cfg.dim, cfg.freq_bins)
        self.phase_head = nn.Linear(cfg.dim, 2 * cfg.freq_bins)
        self.register_buffer("window", torch.hann_window(cfg.win), persistent=False)

    def heads(self, mel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, n_mels, T) log-mel -> log amplitude, and the phase head's (R, I), each (B, F, T)."""
        if mel.dim() != 3 or mel.size(1) != self.cfg.n_mels:
            raise ValueError(f"mel must be (B, {self.cfg.n_mels}, T), got shape {tuple(mel.shape)}")
        x = self.embed(mel.float())  # (B, dim, T)
        x = self.norm_in(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        h = self.norm_out(x.transpose(1, 2))  # (B, T, dim)
        log_amp = self.amp_head(h).transpose(1, 2).clamp(max=self.cfg.max_log_amp)  # (B, F, T)
        real, imag = self.phase_head(h).transpose(1, 2).chunk(2, dim=1)  # 2 x (B, F, T)
        return log_amp, real, imag

    @staticmethod
    def spectrum(log_amp: Tensor, real: Tensor, imag: Tensor) -> Tensor:
        """exp(log_amp) * (R + iI) / |R + iI|: the complex STFT (B, F, T), without forming the
        angle (one scale factor per bin instead of atan2, cos and sin)."""
        scale = torch.exp(log_amp) * torch.rsqrt((real * real + imag * imag).clamp(min=1e-12))
        return torch.complex(real * scale, imag * scale)

    def spectra(self, mel: Tensor) -> Spectra:
        """(B, n_mels, T) log-mel -> predicted amplitude, phase and complex spectra (B, F, T)."""
        log_amp, real, imag = self.heads(mel)
        return Spectra(log_amp, torch.atan2(imag, real), self.spectrum(log_amp, real, imag))

    def stft(self, wave: Tensor) -> Tensor:
        """(B, S) -> complex (B, F, S // hop + 1): the analysis that ``istft`` inverts (window,
        hop, frame ``t`` centred on sample ``t * hop``), i.e. the spectra the heads should
        predict for ``wave`` (APNet's losses compare against it)."""
        c = self.cfg
        return torch.stft(
            wave.float(),
            c.n_fft,
            c.hop,
            c.win,
            window=self.window,
            center=True,
            return_complex=True,
        )

    def istft(self, spec: Tensor) -> Tensor:
        """Complex (B, F, T) -> (B, T * hop) samples (centred frames; module docstring)."""
        c = self.cfg
        return torch.istft(
            spec,
            c.n_fft,
            c.hop,
            c.win,
            window=self.window,
            center=True,
            length=spec.size(-1) * c.hop,
        )

    def forward(self, mel: Tensor) -> Tensor:
        """(B, n_mels, T) log-mel -> (B, T * hop) float32 wave in about [-1, 1]."""
        return self.istft(self.spectrum(*self.heads(mel)))

    @torch.inference_mode()
    def vocode(self, mel: Tensor) -> Tensor:
        """Inference: (n_mels, T) or (B, n_mels, T) -> (T * hop,) or (B, T * hop)."""
        single = mel.dim() == 2
        wave = self(mel[None] if single else mel)
        return wave[0] if single else wave
