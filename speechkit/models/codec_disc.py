"""Multi-scale STFT discriminator of the codec (after EnCodec's MS-STFTD).

Each sub-discriminator looks at the complex STFT of the wave at one window size (real and
imaginary parts as two input channels) through a stack of 2-D convolutions that are dilated in
time and strided in frequency, and gives a map of real/fake logits. The feature maps of every
layer are returned too, for the generator's feature-matching loss.

    disc = MultiScaleSTFTDiscriminator(STFTDiscConfig())
    logits, features = disc(wave)     # wave (B, S) -> list of (B, 1, T', F'), list of lists
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from speechkit.config import ConfigError

__all__ = ["MultiScaleSTFTDiscriminator", "STFTDiscConfig", "STFTDiscriminator"]


@dataclass
class STFTDiscConfig:
    """windows: n_fft of each sub-discriminator (hop = n_fft // 4). channels: width of the
    convolutions. dilations: time dilations of the middle layers."""

    windows: list[int] = field(default_factory=lambda: [1024, 512, 256])
    channels: int = 16
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4])

    def __post_init__(self) -> None:
        if not self.windows or self.channels < 1:
            raise ConfigError("disc: at least one window and channels >= 1 needed")


class STFTDiscriminator(nn.Module):
    """One window size: (B, S) -> logits (B, 1, T', F') and the feature map of every layer."""

    def __init__(self, n_fft: int, channels: int, dilations: list[int]):
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        layers = [nn.Conv2d(2, c, (3, 9), padding=(1, 4))]
        for d in dilations:  # dims are (time, frequency): dilate time, halve frequency
            layers.append(nn.Conv2d(c, c, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)))
        layers.append(nn.Conv2d(c, c, (3, 3), padding=(1, 1)))
        self.layers = nn.ModuleList(weight_norm(m) for m in layers)
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, wave: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(
            wave.float(), self.n_fft, self.hop, window=self.window, center=True, return_complex=True
        )  # B, F, T'
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2, T', F)
        features = []
        for layer in self.layers:
            x = self.act(layer(x))
            features.append(x)
        return self.out(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """Sub-discriminators at every window of the config."""

    def __init__(self, cfg: STFTDiscConfig):
        super().__init__()
        self.cfg = cfg
        self.discs = nn.ModuleList(
            STFTDiscriminator(n, cfg.channels, cfg.dilations) for n in cfg.windows
        )

    def forward(self, wave: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        """(B, S) -> (logits per sub-discriminator, feature maps per sub-discriminator)."""
        logits, features = [], []
        for d in self.discs:
            lg, ft = d(wave)
            logits.append(lg)
            features.append(ft)
        return logits, features
