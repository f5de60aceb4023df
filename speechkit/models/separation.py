"""Query-conditioned source extraction: a TF-domain temporal convolutional mask network.

Given a mixture and a *query* (a sound class, a text description, or an enrolled speaker), the
separator returns the part of the mixture the query asks for. It is Conv-TasNet's separator (a
stack of dilated depthwise-separable 1-D convolution blocks) run over STFT frames instead of a
learned 2 ms filterbank: 125 frames a second rather than 2,000, which is what makes training on
two CPU cores possible. The query enters every block by FiLM (a per-channel scale and shift
computed from the query vector), as in the conditional separators of USS and the bi-modal
weakly supervised work. The output is a complex ratio mask on the mixture's STFT.

Legend: B batch, S samples (16 kHz), F frequency bins (n_fft / 2 + 1), T STFT frames (hop
``hop`` samples), C/H channels, Q query dim.

Queries (tensors, one row per mixture; rows of kinds that are not used are ignored)::

    kind      int64 (B,)      0 = class, 1 = text, 2 = speaker (``QUERY_KINDS``)
    class_id  int64 (B,)      index into ``cfg.class_names``
    text      float32 (B, 384)  sentence embedding (``query_encoders.SentenceEncoder``)
    speaker   float32 (B, 256)  d-vector of the enrollment (``query_encoders.SpeakerEncoder``)

    model = Separator(SeparatorConfig())
    est = model(mix, kind, class_id, text, speaker)     # (B, S) -> (B, S)

Every layer is frame-local with a finite receptive field (``receptive_field_s``): no
utterance-level normalisation, so a long recording can be processed in overlapping chunks and
overlap-added (``speechkit.separate``) with the result of processing it whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from speechkit.config import ConfigError
from speechkit.models.query_encoders import SPEAKER_DIM, TEXT_DIM

__all__ = ["QUERY_KINDS", "Separator", "SeparatorConfig"]

QUERY_KINDS = ("class", "text", "speaker")
DEFAULT_CLASSES = ("speech", "noise", "babble", "beeps", "music")


@dataclass
class SeparatorConfig:
    """Shape of the separator.

    class_names: the sound classes a class query may name (the order fixes the embedding rows).
    n_fft / hop: STFT in samples at ``sample_rate`` (Hann window). channels (C): width of the
    residual stream; hidden (H): width inside a block; kernel: depthwise kernel in frames;
    dilations: one stack (each block doubles the reach); stacks: repeats of it; query_dim (Q).
    mask: ``complex`` (ratio mask with real and imaginary parts, each bounded to [-2, 2]) or
    ``magnitude`` (sigmoid, mixture phase).
    """

    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 128
    channels: int = 128
    hidden: int = 256
    kernel: int = 3
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    stacks: int = 2
    query_dim: int = 128
    mask: Literal["complex", "magnitude"] = "complex"

    def __post_init__(self) -> None:
        if not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(
                f"model.class_names must be distinct and non-empty: {self.class_names}"
            )
        if self.hop <= 0 or self.n_fft < self.hop or self.n_fft % 2:
            raise ConfigError(f"model: need an even n_fft >= hop > 0, got {self.n_fft}/{self.hop}")
        if self.kernel % 2 == 0:
            raise ConfigError(f"model.kernel must be odd (centred convolutions), got {self.kernel}")
        if min(self.dilations, default=0) < 1 or self.stacks < 1:
            raise ConfigError("model.dilations must be >= 1 and model.stacks >= 1")

    @property
    def receptive_field_s(self) -> float:
        """Seconds of context each side of an output frame (convolutions plus one window)."""
        frames = self.stacks * sum(d * (self.kernel - 1) // 2 for d in self.dilations)
        return (frames * self.hop + self.n_fft) / self.sample_rate


class FiLMBlock(nn.Module):
    """Conv-TasNet block with FiLM, channels last: pointwise C -> H, PReLU, LayerNorm,
    FiLM(query), dilated depthwise conv over frames, PReLU, LayerNorm, pointwise H -> C,
    residual. x (B, T, C), q (B, Q) -> (B, T, C). Channels-last keeps the pointwise layers
    plain matrix products (on CPU, 1x1 convolutions and the transposes around per-frame norms
    cost twice as much)."""

    def __init__(self, cfg: SeparatorConfig, dilation: int) -> None:
        super().__init__()
        c, h = cfg.channels, cfg.hidden
        self.inp = nn.Sequential(nn.Linear(c, h), nn.PReLU(), nn.LayerNorm(h))
        self.film = nn.Linear(cfg.query_dim, 2 * h)
        pad = dilation * (cfg.kernel - 1) // 2
        self.depthwise = nn.Conv1d(h, h, cfg.kernel, dilation=dilation, padding=pad, groups=h)
        self.out = nn.Sequential(nn.PReLU(), nn.LayerNorm(h), nn.Linear(h, c))
        # Start as the unconditioned block (scale 1, shift 0): the query's effect is learned.
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, q: Tensor) -> Tensor:
        h = self.inp(x)  # (B, T, H)
        gamma, beta = self.film(q).unsqueeze(1).chunk(2, dim=-1)  # (B, 1, H) each
        h = h * (1 + gamma) + beta
        h = self.depthwise(h.transpose(1, 2)).transpose(1, 2)
        return x + self.out(h)


class QueryEmbedding(nn.Module):
    """The three query kinds mapped into one space: (kind, class_id, text, speaker) -> (B, Q)."""

    def __init__(self, cfg: SeparatorConfig) -> None:
        super().__init__()
        q = cfg.query_dim
        self.classes = nn.Embedding(len(cfg.class_names), q)
        self.text = nn.Linear(TEXT_DIM, q)
        self.speaker = nn.Linear(SPEAKER_DIM, q)
        self.mix = nn.Sequential(nn.PReLU(), nn.Linear(q, q))

    def forward(self, kind: Tensor, class_id: Tensor, text: Tensor, speaker: Tensor) -> Tensor:
        by_kind = torch.stack(
            [self.classes(class_id.clamp_min(0)), self.text(text), self.speaker(speaker)], dim=1
        )  # (B, 3, Q)
        picked = by_kind[torch.arange(len(kind), device=kind.device), kind]
        return self.mix(picked)


class Separator(nn.Module):
    """See the module docstring. ``forward`` maps mixtures (B, S) to estimates (B, S)."""

    def __init__(self, cfg: SeparatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        bins = cfg.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)
        self.query = QueryEmbedding(cfg)
        self.inp = nn.Sequential(nn.Linear(bins, cfg.channels), nn.LayerNorm(cfg.channels))
        self.blocks = nn.ModuleList(
            FiLMBlock(cfg, d) for _ in range(cfg.stacks) for d in cfg.dilations
        )
        out_bins = 2 * bins if cfg.mask == "complex" else bins
        self.head = nn.Sequential(nn.PReLU(), nn.Linear(cfg.channels, out_bins))

    def class_index(self, name: str) -> int:
        """Row of a class query; ValueError naming the known classes for any other name."""
        if name not in self.cfg.class_names:
            raise ValueError(
                f"unknown query class {name!r}; this model knows {list(self.cfg.class_names)}"
            )
        return self.cfg.class_names.index(name)

    def stft(self, wave: Tensor) -> Tensor:
        """(B, S) -> complex (B, F, T), T = S // hop + 1 (centred frames)."""
        return torch.stft(wave, self.cfg.n_fft, self.cfg.hop, window=self.window,
                          center=True, return_complex=True)  # fmt: skip

    def forward(
        self, mix: Tensor, kind: Tensor, class_id: Tensor, text: Tensor, speaker: Tensor
    ) -> Tensor:
        """mix float (B, S) at ``cfg.sample_rate``; queries as in the module docstring.
        Returns the estimate of the queried source, float (B, S)."""
        num_samples = mix.shape[-1]
        spec = self.stft(mix)  # (B, F, T)
        feats = torch.log(spec.real.square() + spec.imag.square() + 1e-8)
        q = self.query(kind, class_id, text, speaker)  # (B, Q)
        x = self.inp(feats.transpose(1, 2))  # (B, T, C)
        for block in self.blocks:
            x = block(x, q)
        m = self.head(x).transpose(1, 2)  # (B, 2F or F, T)
        if self.cfg.mask == "complex":
            real, imag = (2 * torch.tanh(m)).chunk(2, dim=1)
            est = spec * torch.complex(real, imag)
        else:
            est = spec * torch.sigmoid(m)
        return torch.istft(est, self.cfg.n_fft, self.cfg.hop, window=self.window,
                           center=True, length=num_samples)  # fmt: skip

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
