"""A neural speech codec: encoder, residual vector quantiser, decoder, in one of two backbones.

``backbone: conv`` is the SoundStream / EnCodec layout at speech size: 16 kHz waves, strides
(2, 4, 5, 8) give one latent frame per 320 samples (50 Hz); the decoder mirrors the encoder with
transposed convolutions, so its first and last layers run at the sample rate.

``backbone: spectral`` runs at the frame rate throughout (the Vocos / WavTokenizer decoder, with
an STFT encoder to match): the encoder reads the log-magnitude STFT (Hann window of ``n_fft``,
one frame per ``hop`` = 320 samples, frame ``t`` centred on sample ``t * hop``) through ConvNeXt
blocks; the decoder is the TTS vocoder's network (``models/vocoder.py``) reading the latent
where the vocoder reads a mel: ConvNeXt blocks predict each frame's log amplitude and phase
(APNet's parallel phase estimation) and ``torch.istft`` makes the samples.
No layer runs at 16 kHz, which is why it trains in CPU minutes where the conv backbone needs
GPU days (egs/phrasebook/codec1/RESULTS.md).

Either way the latent (``rvq.dim`` channels) is quantised by
``speechkit.nn.quantize.ResidualVQ``. With 1024-code codebooks a frame costs 10 bits per
codebook: 3 codebooks are 1.5 kbps, 6 are 3 kbps, 12 are 6 kbps (``bitrate``).

    cfg = CodecConfig()
    codec = Codec(cfg)
    codes = codec.encode(wave)                 # (B, S) -> (B, Q, ceil(S / 320)) int64
    wave_hat = codec.decode(codes)             # (B, Q', T) -> (B, T * 320), any Q' <= Q
    out = codec(wave, lengths)                 # training: CodecOutput (wave, codes, losses)

The adversarial discriminator is ``speechkit.models.codec_disc``; the losses and the semantic
distillation of the first codebook are the ``codec`` task's (``speechkit/tasks/codec.py``).
Waves are float32 in [-1, 1] (B, S); inputs are zero-padded on the right to whole frames.
Weight normalisation on every convolution, as in the anchors, keeps adversarial training stable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from speechkit.config import ConfigError
from speechkit.models.vocoder import Spectra, Vocoder, VocoderConfig
from speechkit.nn.convnext import ConvNeXtBlock
from speechkit.nn.quantize import ResidualVQ, RVQConfig

__all__ = ["Codec", "CodecConfig", "CodecOutput", "SpectralConfig"]

BACKBONES = ("conv", "spectral")


@dataclass
class SpectralConfig:
    """Shapes of the spectral backbone (``backbone: spectral``).

    hop: samples per frame (320 = 50 Hz at 16 kHz). n_fft: STFT size and Hann window of the
    encoder's analysis and the decoder's synthesis, in samples. dim: width of the ConvNeXt
    blocks. enc_layers / dec_layers: blocks before / after the quantiser. ffn_mult: pointwise
    width in multiples of ``dim``. kernel: of the depthwise convolutions (odd), in frames.
    max_log_amp: clamp of the predicted natural-log amplitude before ``exp``.
    encoder_input: what the encoder sees of each STFT frame: ``log_amp`` (the log magnitude,
    no phase) or ``complex`` (the log magnitude and the real and imaginary parts of the
    power-law compressed spectrum ``S |S|^-0.7``, so that the codes can carry phase).
    """

    hop: int = 320
    n_fft: int = 1024
    dim: int = 256
    enc_layers: int = 4
    dec_layers: int = 8
    ffn_mult: int = 3
    kernel: int = 7
    max_log_amp: float = 5.0
    encoder_input: str = "log_amp"

    def __post_init__(self) -> None:
        if self.encoder_input not in ("log_amp", "complex"):
            raise ConfigError(
                "model.spectral.encoder_input must be log_amp or complex, "
                f"got {self.encoder_input!r}"
            )
        if not 0 < self.hop <= self.n_fft or self.n_fft % 2:
            raise ConfigError(
                f"model.spectral: need an even n_fft >= hop > 0, got {self.n_fft}/{self.hop}"
            )
        if min(self.dim, self.enc_layers, self.dec_layers, self.ffn_mult) < 1:
            raise ConfigError("model.spectral: dim, enc_layers, dec_layers, ffn_mult must be >= 1")
        if self.kernel % 2 != 1:
            raise ConfigError(
                f"model.spectral.kernel must be odd (same padding), got {self.kernel}"
            )

    @property
    def freq_bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclass
class CodecConfig:
    """Shapes of the codec.

    sample_rate: Hz of the waves it codes. backbone: ``conv`` or ``spectral`` (module
    docstring). rvq: the quantiser (``rvq.dim`` is the latent width). spectral: the spectral
    backbone's shapes. The rest shape the conv backbone only: channels: width of the first
    convolution (doubled after each downsampling). strides: downsampling factors (their
    product is the hop, in samples per frame). res_dilations: dilations of the residual units
    before each downsampling. kernel: width of the first and last convolutions.
    """

    sample_rate: int = 16000
    backbone: str = "conv"
    channels: int = 16
    strides: list[int] = field(default_factory=lambda: [2, 4, 5, 8])
    res_dilations: list[int] = field(default_factory=lambda: [1, 3])
    kernel: int = 7
    rvq: RVQConfig = field(default_factory=RVQConfig)
    spectral: SpectralConfig = field(default_factory=SpectralConfig)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"model.backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.channels < 1 or not self.strides or min(self.strides) < 1:
            raise ConfigError("model: channels >= 1 and non-empty strides >= 1 needed")
        if self.kernel % 2 != 1:
            raise ConfigError(f"model.kernel must be odd (symmetric padding), got {self.kernel}")

    @property
    def hop(self) -> int:
        """Samples per latent frame."""
        return math.prod(self.strides) if self.backbone == "conv" else self.spectral.hop

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop

    def bitrate(self, n_q: int) -> float:
        """Bits per second of ``n_q`` codebooks."""
        return n_q * math.log2(self.rvq.codebook_size) * self.frame_rate

    def quantizers_for(self, kbps: float) -> int:
        """Codebooks that fit ``kbps`` (at least one, at most all); e.g. 6 kbps -> 12."""
        per_q = self.bitrate(1) / 1000
        n = int(math.floor(kbps / per_q + 1e-6))
        if n < 1:
            raise ValueError(f"{kbps} kbps is below one codebook ({per_q:g} kbps)")
        return min(n, self.rvq.num_quantizers)


def _conv(
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int = 1,
    dilation: int = 1,
    padding: int | None = None,
) -> nn.Module:
    if padding is None:
        padding = dilation * (kernel - 1) // 2  # "same" length for odd kernels at stride 1
    return weight_norm(nn.Conv1d(c_in, c_out, kernel, stride, padding, dilation))


class ResidualUnit(nn.Module):
    """x + conv1x1(ELU(conv_k,dilated(ELU(x)))): (B, C, S) -> (B, C, S)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ELU(),
            _conv(channels, channels // 2, 7, dilation=dilation),
            nn.ELU(),
            _conv(channels // 2, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class Encoder(nn.Module):
    """(B, 1, S) -> (B, D, S / hop); S must be a multiple of the hop."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        c = cfg.channels
        layers: list[nn.Module] = [_conv(1, c, cfg.kernel)]
        for s in cfg.strides:
            layers += [ResidualUnit(c, d) for d in cfg.res_dilations]
            # kernel 2s, padding ceil(s/2): exactly S / s output frames for every s
            layers += [nn.ELU(), _conv(c, 2 * c, 2 * s, stride=s, padding=(s + 1) // 2)]
            c *= 2
        layers += [nn.ELU(), _conv(c, cfg.rvq.dim, 3)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """(B, D, T) -> (B, T * hop), the mirror of the encoder."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        c = cfg.channels * 2 ** len(cfg.strides)
        layers: list[nn.Module] = [_conv(cfg.rvq.dim, c, cfg.kernel)]
        for s in reversed(cfg.strides):
            up = nn.ConvTranspose1d(
                c, c // 2, 2 * s, s, padding=(s + 1) // 2, output_padding=s % 2
            )  # exactly T * s samples
            layers += [nn.ELU(), weight_norm(up)]
            c //= 2
            layers += [ResidualUnit(c, d) for d in cfg.res_dilations]
        layers += [nn.ELU(), _conv(c, 1, cfg.kernel)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)[:, 0]


class SpectralEncoder(nn.Module):
    """(B, 1, S) -> (B, D, S / hop), S a multiple of the hop: STFT frames (centred on
    ``t * hop``, zeros beyond the ends; their log magnitude, with ``encoder_input: complex`` also
    the compressed complex spectrum) -> ConvNeXt blocks -> latent."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        c = cfg.spectral
        self.cfg = c
        channels = c.freq_bins * (3 if c.encoder_input == "complex" else 1)
        self.embed = nn.Conv1d(channels, c.dim, 3, padding=1)
        self.norm_in = nn.LayerNorm(c.dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(c.dim, c.ffn_mult, c.kernel, 1.0 / c.enc_layers)
            for _ in range(c.enc_layers)
        )
        self.norm_out = nn.LayerNorm(c.dim)
        self.proj = nn.Linear(c.dim, cfg.rvq.dim)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        c = self.cfg
        spec = torch.stft(
            x[:, 0].float(),
            c.n_fft,
            c.hop,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )[..., :-1]  # (B, F, S / hop): the frame centred past the end carries no own sample
        mag = spec.abs().clamp(min=1e-5)
        feats = torch.log(mag)  # (B, F, T)
        if c.encoder_input == "complex":
            # magnitude ** 0.3 with the phase: a scale at which quiet bins' phase still counts
            compressed = spec * mag.pow(-0.7)
            feats = torch.cat([feats, compressed.real, compressed.imag], dim=1)  # (B, 3F, T)
        h = self.embed(feats)  # (B, dim, T)
        h = self.norm_in(h.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        return self.proj(self.norm_out(h.transpose(1, 2))).transpose(1, 2)  # (B, D, T)


def spectral_decoder(cfg: CodecConfig) -> Vocoder:
    """The spectral backbone's decoder: (B, D, T) latent -> (B, T * hop) wave. It is the
    vocoder's network with the latent in place of the mel: ConvNeXt blocks, per-frame log
    amplitude and phase (B, F, T), inverse STFT (frame ``t`` centred on sample ``t * hop``)."""
    c = cfg.spectral
    return Vocoder(
        VocoderConfig(
            sample_rate=cfg.sample_rate,
            n_fft=c.n_fft,
            hop=c.hop,
            win=c.n_fft,
            n_mels=cfg.rvq.dim,
            dim=c.dim,
            layers=c.dec_layers,
            ffn_mult=c.ffn_mult,
            kernel=c.kernel,
            max_log_amp=c.max_log_amp,
        )
    )


@dataclass
class CodecOutput:
    """One training forward: ``wave`` (B, S') the reconstruction (S' = S padded to whole
    frames), ``codes`` (B, n, T), ``commit_loss`` scalar, ``first`` (B, D, T) the first
    codebook's latent (straight-through), ``frame_mask`` (B, T) valid frames, ``spectra`` the
    spectral decoder's log amplitude, phase and complex spectrum (B, F, T), frame ``t`` centred
    on sample ``t * hop`` (None for the conv backbone)."""

    wave: Tensor
    codes: Tensor
    commit_loss: Tensor
    first: Tensor
    frame_mask: Tensor
    spectra: Spectra | None = None


class Codec(nn.Module):
    """Encoder + RVQ + decoder (see the module docstring)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        spectral = cfg.backbone == "spectral"
        self.encoder = SpectralEncoder(cfg) if spectral else Encoder(cfg)
        self.quantizer = ResidualVQ(cfg.rvq)
        self.decoder = spectral_decoder(cfg) if spectral else Decoder(cfg)

    def pad(self, wave: Tensor) -> Tensor:
        """(B, S) -> (B, ceil(S / hop) * hop), zero-padded on the right (at least one frame)."""
        hop = self.cfg.hop
        frames = max(1, -(-wave.size(-1) // hop))
        return F.pad(wave, (0, frames * hop - wave.size(-1)))

    def frames(self, lengths: Tensor) -> Tensor:
        """(B,) valid samples -> (B,) valid frames (a frame counts if it holds any sample)."""
        return (lengths + self.cfg.hop - 1) // self.cfg.hop

    def forward(
        self, wave: Tensor, lengths: Tensor | None = None, n_q: int | None = None
    ) -> CodecOutput:
        """(B, S) waves, ``lengths`` (B,) valid samples -> :class:`CodecOutput`. ``n_q``: the
        codebooks to use (None: quantiser dropout in training, all in eval mode)."""
        x = self.pad(wave)
        z = self.encoder(x[:, None])  # (B, D, T)
        t = z.size(-1)
        if lengths is None:
            mask = torch.ones(z.size(0), t, dtype=torch.bool, device=z.device)
        else:
            mask = torch.arange(t, device=z.device)[None] < self.frames(lengths)[:, None]
        q = self.quantizer(z, n_q, mask)
        if not isinstance(self.decoder, Vocoder):
            return CodecOutput(self.decoder(q.quantized), q.codes, q.commit_loss, q.first, mask)
        spectra = self.decoder.spectra(q.quantized)
        wave = self.decoder.istft(spectra.spec)
        return CodecOutput(wave, q.codes, q.commit_loss, q.first, mask, spectra)

    @torch.no_grad()
    def encode(self, wave: Tensor, n_q: int | None = None) -> Tensor:
        """(B, S) -> codes (B, n_q, ceil(S / hop)) int64 (all codebooks by default)."""
        z = self.encoder(self.pad(wave)[:, None])
        return self.quantizer.encode(z, n_q)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, n, T) -> (B, T * hop) wave; fewer codebooks = a lower bitrate."""
        return self.decoder(self.quantizer.decode(codes))

    def receptive_field(self) -> int:
        """Samples of input on each side that can reach one latent frame, or codes frames
        (in samples) that can reach one output sample (an upper bound of both): the context a
        chunked encoder or decoder must keep around each chunk."""
        cfg = self.cfg
        if cfg.backbone == "spectral":
            c = cfg.spectral
            encoder = c.n_fft // 2 + c.hop * (1 + c.kernel // 2 * c.enc_layers)  # STFT, embed 3
            decoder = c.hop * (c.kernel // 2) * (1 + c.dec_layers) + c.n_fft // 2  # + overlap-add
            return max(encoder, decoder)
        span, scale = (cfg.kernel - 1) // 2, 1
        for s in cfg.strides:
            span += scale * sum(d * 3 for d in cfg.res_dilations)  # kernel 7: 3 taps a side
            span += scale * s
            scale *= s
        return span + scale  # the final kernel-3 convolution
