"""A small acoustic-event tagger: which sound classes a clip holds, and where.

Trained from clip-level (weak) labels only, it gives frame-level posteriors that localise each
class (sound event detection), clip-level posteriors, and a clip embedding. The separation
recipe uses the frame posteriors to find anchor segments for USS-style weakly supervised
training (``speechkit/data/anchors.py``); the pruning work reuses the clip embedding and the
corpus event (``event_of``).

Tags (``TAGS``): ``speech`` plus the phrasebook's background classes. A phrasebook clip of event
``clean`` is tagged {speech}; one of event ``music`` {speech, music}; and so on.

Legend: B batch, S samples (16 kHz), T frames (20 ms), K tags, D embedding dim.

    model = Tagger(TaggerConfig())
    out = model(wave, lengths)   # wave (B, S), lengths (B,) samples
    out["frame_probs"] (B, T, K), out["clip_probs"] (B, K), out["embedding"] (B, D),
    out["frame_mask"] (B, T) bool (True = valid frame)

Clip posteriors pool the frame posteriors by linear softmax (sum p^2 / sum p over valid frames;
Wang et al., 2019), which keeps the frame posteriors sharp enough to localise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torchaudio
from torch import Tensor, nn

from speechkit.config import ConfigError

__all__ = ["TAGS", "Tagger", "TaggerConfig", "event_of"]

TAGS = ("speech", "noise", "babble", "beeps", "music")


@dataclass
class TaggerConfig:
    """tags: class names (order = output columns); n_mels: log-mel bands (25 ms window, 10 ms
    hop); channels: of the three 2-D conv blocks; dim (D): frame embedding; context_layers:
    dilated 1-D conv layers over frames after the 2-D blocks."""

    tags: list[str] = field(default_factory=lambda: list(TAGS))
    sample_rate: int = 16000
    n_mels: int = 64
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    dim: int = 128
    context_layers: int = 2

    def __post_init__(self) -> None:
        if not self.tags or len(set(self.tags)) != len(self.tags):
            raise ConfigError(f"model.tags must be distinct and non-empty: {self.tags}")
        if self.n_mels % 2 ** len(self.channels):
            raise ConfigError(
                f"model.n_mels ({self.n_mels}) must be divisible by 2^{len(self.channels)} "
                "(each conv block halves the mel axis)"
            )


def _conv_block(cin: int, cout: int, pool_time: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.AvgPool2d((pool_time, 2)),  # (time, mel)
    )


class Tagger(nn.Module):
    """See the module docstring."""

    def __init__(self, cfg: TaggerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            cfg.sample_rate, n_fft=400, hop_length=160, n_mels=cfg.n_mels
        )
        chans = [1, *cfg.channels]
        # Only the first block halves time: 10 ms mel frames -> 20 ms tagger frames.
        self.convs = nn.Sequential(
            *(
                _conv_block(a, b, 2 if i == 0 else 1)
                for i, (a, b) in enumerate(zip(chans, chans[1:]))
            )
        )
        flat = cfg.channels[-1] * (cfg.n_mels // 2 ** len(cfg.channels))
        self.proj = nn.Linear(flat, cfg.dim)
        self.context = nn.ModuleList(
            nn.Conv1d(cfg.dim, cfg.dim, 3, padding=2**i, dilation=2**i)
            for i in range(cfg.context_layers)
        )
        self.head = nn.Linear(cfg.dim, len(cfg.tags))

    def frames(self, lengths: Tensor) -> Tensor:
        """Valid tagger frames (B,) of waves of ``lengths`` samples."""
        return (lengths // 160 + 1) // 2

    def forward(self, wave: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """wave float (B, S) at 16 kHz, zero-padded; lengths int64 (B,) samples."""
        feats = torch.log(self.mel(wave) + 1e-6)  # (B, n_mels, S // 160 + 1)
        x = self.convs(feats.transpose(1, 2).unsqueeze(1))  # (B, C, T, n_mels')
        x = self.proj(x.permute(0, 2, 1, 3).flatten(2))  # (B, T, D)
        h = x.transpose(1, 2)
        for conv in self.context:
            h = h + torch.relu(conv(h))
        h = h.transpose(1, 2)  # (B, T, D)
        frame_probs = torch.sigmoid(self.head(h))  # (B, T, K)
        steps = torch.arange(h.shape[1], device=wave.device)
        mask = steps[None, :] < self.frames(lengths).clamp(1, h.shape[1])[:, None]  # (B, T)
        m = mask.unsqueeze(-1).to(frame_probs.dtype)
        clip = (frame_probs.square() * m).sum(1) / ((frame_probs * m).sum(1) + 1e-7)
        embedding = (h * m).sum(1) / m.sum(1)
        return {
            "frame_probs": frame_probs,
            "clip_probs": clip.clamp(1e-7, 1 - 1e-7),
            "embedding": embedding,
            "frame_mask": mask,
        }


def event_of(clip_probs: Tensor, tags: list[str] | tuple[str, ...] = TAGS) -> list[str]:
    """The phrasebook event of each clip (B, K) -> B names: the most probable background tag if
    its posterior exceeds 0.5, else ``clean``."""
    background = [i for i, t in enumerate(tags) if t != "speech"]
    probs = clip_probs.detach()[:, background]
    best = probs.argmax(1)
    return [
        tags[background[int(i)]] if float(p[i]) > 0.5 else "clean"
        for i, p in zip(best, probs, strict=True)
    ]
