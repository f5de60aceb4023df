"""Convolutional front end: 4x time subsampling of log-mel frames.

Two 3x3 convolutions with stride 2 (no padding) over (time, frequency), each followed by ReLU,
then a linear map of channels x remaining frequency bins to the model width. With 10 ms input
frames the output hop is 40 ms.

Output length for ``T`` input frames (exact, see :meth:`Conv2dSubsampling4.output_lengths`)::

    T1 = (T - 1) // 2;  T' = (T1 - 1) // 2

Every output frame ``t`` sees input frames ``4t .. 4t + 6`` only, so frames past an utterance's
valid length never leak into its valid outputs.

``CodeEmbedding2`` is the front end of an S2T model that reads speech codec codes instead of
log-mel frames: one embedding table per codebook, summed, then a stride-2 convolution from the
codec's 20 ms frames to the encoder's 40 ms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CodeEmbedding2", "Conv2dSubsampling4"]

MIN_FRAMES = 7  # shortest input that yields one output frame


class Conv2dSubsampling4(nn.Module):
    """(B, T, F) features -> (B, T', D) with T' = ((T - 1) // 2 - 1) // 2."""

    def __init__(self, n_mels: int, d_model: int, channels: int = 0, activation: str = "relu"):
        """``channels`` of the two convolutions; 0 means ``d_model`` (OWSM). Fewer channels make
        the front end, which dominates small models on CPU, several times cheaper."""
        super().__init__()
        channels = channels or d_model
        act = {"relu": nn.ReLU, "gelu": nn.GELU}[activation]
        if n_mels < MIN_FRAMES:
            raise ValueError(f"Conv2dSubsampling4 needs n_mels >= {MIN_FRAMES}, got {n_mels}")
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, stride=2),
            act(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=2),
            act(),
        )
        f_out = ((n_mels - 1) // 2 - 1) // 2
        self.out = nn.Linear(channels * f_out, d_model)

    @staticmethod
    def output_lengths(lengths: Tensor) -> Tensor:
        """Valid output frames for ``lengths`` (B,) valid input frames; 0 when under 7."""
        return (((lengths - 1) // 2 - 1) // 2).clamp(min=0)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, F) -> (B, T', D); raises ValueError when T < 7."""
        if x.size(1) < MIN_FRAMES:
            raise ValueError(
                f"need at least {MIN_FRAMES} frames for 4x subsampling, got {x.size(1)}"
            )
        h = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = h.shape
        return self.out(h.transpose(1, 2).reshape(b, t, c * f))


class CodeEmbedding2(nn.Module):
    """Codec codes (B, T, Q) (integer values in any dtype; padding rows are ignored by the
    lengths) -> (B, T', D) with T' = (T + 1) // 2: the sum of one embedding per codebook, then
    a kernel-3 stride-2 convolution."""

    def __init__(self, num_codebooks: int, codebook_size: int, d_model: int):
        super().__init__()
        self.codebook_size = codebook_size
        self.embed = nn.ModuleList(
            nn.Embedding(codebook_size, d_model) for _ in range(num_codebooks)
        )
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)

    @staticmethod
    def output_lengths(lengths: Tensor) -> Tensor:
        """Valid output frames for ``lengths`` (B,) valid code frames."""
        return (lengths + 1) // 2

    def forward(self, codes: Tensor) -> Tensor:
        if codes.size(-1) != len(self.embed):
            raise ValueError(f"expected {len(self.embed)} codebooks, got {codes.size(-1)}")
        c = codes.long().clamp(0, self.codebook_size - 1)  # (B, T, Q)
        x = torch.stack([e(c[..., i]) for i, e in enumerate(self.embed)]).sum(0)  # (B, T, D)
        return self.conv(x.transpose(1, 2)).transpose(1, 2)
