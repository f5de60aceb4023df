"""Reconstruction losses of waveform generators: multi-resolution STFT and multi-scale mel.

Both compare a generated wave with its reference through magnitude spectra at several
resolutions, so neither a short window (good time resolution) nor a long one (good frequency
resolution) dominates what the generator learns:

* ``MultiResolutionSTFTLoss``: per resolution, spectral convergence
  ``||S_ref| - |S_gen|||_F / ||S_ref||_F`` plus the mean L1 distance of log magnitudes
  (Parallel WaveGAN's recipe);
* ``MelLoss``: mean L1 distance of log mel spectrograms at several window sizes (EnCodec and
  DAC use it as their main reconstruction loss), also the benchmark's "mel distance";
* ``si_sdr``: scale-invariant signal-to-distortion ratio in dB (a figure, not a loss here);
* ``spectrum_losses``: APNet's losses (Ai & Ling, arXiv 2305.07952) on the spectra that a
  frame-level generator predicts (the vocoder, the codec's spectral decoder) against the
  reference's STFT at the generator's own resolution: mean squared log-amplitude error, and
  the anti-wrapped instantaneous phase, group delay and phase time difference errors
  (``phase_losses``). They reach the phase directly, which the magnitude losses above see only
  through the overlap-add of neighbouring frames;
* ``consistency_losses``: APNet's STFT-spectrum losses on the same predicted spectra:
  ``consistency``, how far the predicted complex spectrogram moves when it is synthesised and
  analysed again (an amplitude and a phase that each look right can still describe no signal,
  and then the overlap-add smears them), and ``real_imag``, the real and imaginary parts
  against the reference.

Written here rather than taken from ``auraloss``: each loss is a few lines, and this way their
definitions (log floor, window, mel filters) are the ones the codec benchmark reports.

Shapes: waves (B, S) float, samples at ``sample_rate``; ``lengths`` (B,) valid samples (the
rest is padding and is left out of every frame sum), or None when all are valid.
"""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import Tensor, nn

__all__ = [
    "MelLoss",
    "MultiResolutionSTFTLoss",
    "anti_wrap",
    "consistency_losses",
    "frame_mask",
    "magnitude",
    "phase_losses",
    "si_sdr",
    "spectrum_losses",
]

_EPS = 1e-5  # log floor of magnitudes: about -100 dB below a full-scale sine


def magnitude(wave: Tensor, n_fft: int, hop: int) -> Tensor:
    """(B, S) -> (B, n_fft // 2 + 1, S // hop + 1) STFT magnitude (Hann window, centred)."""
    window = torch.hann_window(n_fft, device=wave.device, dtype=torch.float32)
    spec = torch.stft(wave.float(), n_fft, hop, window=window, center=True, return_complex=True)
    return spec.abs()


def frame_mask(lengths: Tensor | None, frames: int, hop: int, batch: int, device) -> Tensor:
    """(B, 1, frames) float: 1 for frames centred on a valid sample, 0 on padding."""
    if lengths is None:
        return torch.ones(batch, 1, frames, device=device)
    centres = torch.arange(frames, device=device) * hop
    return (centres[None] < lengths[:, None].to(device)).float()[:, None]


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over ``resolutions`` of (n_fft, hop)."""

    def __init__(
        self, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64))
    ):
        super().__init__()
        self.resolutions = tuple(resolutions)

    def forward(self, gen: Tensor, ref: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Scalar loss of ``gen`` against ``ref`` (both (B, S))."""
        total = gen.new_zeros((), dtype=torch.float32)
        for n_fft, hop in self.resolutions:
            g, r = magnitude(gen, n_fft, hop), magnitude(ref, n_fft, hop)
            m = frame_mask(lengths, g.size(-1), hop, g.size(0), g.device)
            sc = torch.linalg.norm((r - g) * m) / torch.linalg.norm(r * m).clamp(min=_EPS)
            log_l1 = ((r.clamp(min=_EPS).log() - g.clamp(min=_EPS).log()).abs() * m).sum()
            log_l1 = log_l1 / (m.sum() * g.size(1)).clamp(min=1)
            total = total + sc + log_l1
        return total / len(self.resolutions)


class MelLoss(nn.Module):
    """Mean L1 distance of natural-log mel spectrograms, averaged over window sizes.

    ``windows``: n_fft per scale (hop = n_fft // 4); ``n_mels`` mel bands from 0 Hz to Nyquist
    (Slaney scale and normalisation).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        windows: tuple[int, ...] = (256, 512, 1024),
        n_mels: int = 64,
    ):
        super().__init__()
        self.windows = tuple(windows)
        for n_fft in self.windows:
            fb = torchaudio.functional.melscale_fbanks(
                n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate, "slaney", "slaney"
            )  # (F, n_mels)
            self.register_buffer(f"fb_{n_fft}", fb.t().contiguous(), persistent=False)

    def log_mel(self, wave: Tensor, n_fft: int) -> Tensor:
        """(B, S) -> (B, n_mels, frames) log mel magnitude at window ``n_fft``."""
        mag = magnitude(wave, n_fft, n_fft // 4)
        return (getattr(self, f"fb_{n_fft}") @ mag).clamp(min=_EPS).log()

    def forward(self, gen: Tensor, ref: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Scalar loss of ``gen`` against ``ref`` (both (B, S))."""
        total = gen.new_zeros((), dtype=torch.float32)
        for n_fft in self.windows:
            g, r = self.log_mel(gen, n_fft), self.log_mel(ref, n_fft)
            m = frame_mask(lengths, g.size(-1), n_fft // 4, g.size(0), g.device)
            total = total + ((g - r).abs() * m).sum() / (m.sum() * g.size(1)).clamp(min=1)
        return total / len(self.windows)


def si_sdr(est: Tensor, ref: Tensor, lens: Tensor | None = None) -> Tensor:
    """Scale-invariant SDR in dB per row of (B, S) waves (over the first ``lens`` samples)."""
    mask = torch.ones_like(ref, dtype=torch.bool)
    if lens is not None:
        mask = torch.arange(ref.size(1), device=ref.device)[None] < lens[:, None].to(ref.device)
    n = mask.sum(1, keepdim=True).clamp(min=1)
    est = (est - (est * mask).sum(1, keepdim=True) / n) * mask  # zero-mean over valid samples
    ref = (ref - (ref * mask).sum(1, keepdim=True) / n) * mask
    scale = (est * ref).sum(1, keepdim=True) / ref.pow(2).sum(1, keepdim=True).clamp(min=1e-8)
    target = scale * ref
    noise = est - target
    ratio = target.pow(2).sum(1).clamp(min=1e-8) / noise.pow(2).sum(1).clamp(min=1e-8)
    return 10 * torch.log10(ratio)


def anti_wrap(x: Tensor) -> Tensor:
    """APNet's anti-wrapping function: |x - 2 pi round(x / 2 pi)|, the distance of a phase
    difference to the nearest multiple of 2 pi (so pi and -pi are the same phase)."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_losses(pred: Tensor, ref: Tensor, mask: Tensor) -> Tensor:
    """Instantaneous phase + group delay + phase time difference losses (APNet), each the mean
    anti-wrapped error over valid frames. ``pred``, ``ref``: (B, F, T) radians; ``mask``:
    (B, 1, T) float, 1 on valid frames."""
    ip = anti_wrap(pred - ref)
    gd = anti_wrap(torch.diff(pred, dim=1) - torch.diff(ref, dim=1))  # along frequency
    ptd = anti_wrap(torch.diff(pred, dim=2) - torch.diff(ref, dim=2))  # along time

    def mean(x: Tensor, m: Tensor) -> Tensor:
        return (x * m).sum() / (m.sum() * x.size(1)).clamp(min=1)

    return mean(ip, mask) + mean(gd, mask) + mean(ptd, mask[..., 1:] * mask[..., :-1])


def spectrum_losses(log_amp: Tensor, phase: Tensor, ref: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """APNet's ``amp`` (mean squared natural-log amplitude error over valid frames and bins)
    and ``phase`` (``phase_losses``) of predicted spectra against the reference STFT ``ref``
    (B, F, T) complex, taken with the generator's own window, hop and frame centres.
    ``log_amp``, ``phase``: (B, F, T); ``mask``: (B, 1, T) float, 1 on valid frames."""
    ref_log_amp = ref.abs().clamp(min=_EPS).log()
    amp = ((log_amp - ref_log_amp).pow(2) * mask).sum() / (mask.sum() * ref.size(1)).clamp(min=1)
    return {"amp": amp, "phase": phase_losses(phase, ref.angle(), mask)}


def consistency_losses(
    spec: Tensor, reanalysed: Tensor, ref: Tensor, mask: Tensor
) -> dict[str, Tensor]:
    """APNet's STFT-spectrum losses of predicted complex spectra ``spec`` (B, F, T).

    ``consistency``: mean over valid frames and bins of ``|spec - reanalysed|^2`` (real and
    imaginary parts), where ``reanalysed`` is the STFT, on the same frames, of the wave that
    ``spec`` inverse-transforms to; zero exactly when ``spec`` is the STFT of some signal.
    ``real_imag``: mean absolute error of the real plus that of the imaginary part against the
    reference STFT ``ref``. Both in the STFT's own units (the wave's amplitude times the window's
    sum); ``mask`` (B, 1, T) float, 1 on the frames to count.
    """
    denom = (mask.sum() * spec.size(1)).clamp(min=1)
    diff = spec - reanalysed
    consistency = ((diff.real.pow(2) + diff.imag.pow(2)) * mask).sum() / denom
    err = spec - ref
    real_imag = ((err.real.abs() + err.imag.abs()) * mask).sum() / denom
    return {"consistency": consistency, "real_imag": real_imag}
