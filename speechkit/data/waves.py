"""Waveform batches for models that learn from the audio itself (the codec): cuts -> crops.

Batch layout (``WaveCropDataset``)::

    audio       float32 (B, S)   S = segment samples; a cut shorter than that is zero-padded
    audio_lens  int64   (B,)     valid samples of each row
    cut_ids     list[str] (B)

In training each cut gives one crop at a random offset (torch's global RNG, so a resumed run
draws the same crops); otherwise the crop starts at the cut's start, so validation sees the
same audio every time. Audio is read mono at 16 kHz (``speechkit.data.audio.load_audio``); a cut
that cannot be read is dropped with a warning and counted in ``skipped``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicCutSampler
from torch.utils.data import DataLoader, Dataset

from speechkit.config import ConfigError
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.sampler import fixed_count_loader

__all__ = ["WaveCropDataset", "WaveDataConfig", "build_wave_dataloader"]

logger = logging.getLogger(__name__)


@dataclass
class WaveDataConfig:
    """segment_seconds: crop length. batch_size: crops per batch. sample_rate: Hz the audio is
    read at. num_workers: DataLoader worker processes (0 = in the training process)."""

    segment_seconds: float = 1.0
    batch_size: int = 8
    sample_rate: int = 16000
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0 or self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError(
                "data: segment_seconds > 0, batch_size >= 1 and num_workers >= 0 needed"
            )


class WaveCropDataset(Dataset):
    """A batch of cuts -> the batch dict of the module docstring (None if no cut was usable)."""

    def __init__(self, cfg: WaveDataConfig, train: bool):
        self.cfg, self.train = cfg, train
        self.segment = round(cfg.segment_seconds * cfg.sample_rate)
        self.skipped: Counter = Counter()

    def __getitem__(self, cuts: CutSet) -> dict | None:
        rows, lens, ids = [], [], []
        for cut in cuts:
            try:
                wave = torch.from_numpy(load_audio(cut, self.cfg.sample_rate))
            except AudioError as e:
                logger.warning("%s", e)
                self.skipped["unreadable audio"] += 1
                continue
            start = 0
            if self.train and wave.numel() > self.segment:
                start = int(torch.randint(wave.numel() - self.segment + 1, ()))
            crop = wave[start : start + self.segment]
            rows.append(torch.nn.functional.pad(crop, (0, self.segment - crop.numel())))
            lens.append(crop.numel())
            ids.append(cut.id)
        if not rows:
            return None
        return {
            "audio": torch.stack(rows),
            "audio_lens": torch.tensor(lens, dtype=torch.int64),
            "cut_ids": ids,
        }


def build_wave_dataloader(
    cuts: CutSet, cfg: WaveDataConfig, train: bool, seed: int, rank: int = 0, world_size: int = 1
) -> tuple[DataLoader, DynamicCutSampler]:
    """``(loader, sampler)``: ``batch_size`` cuts per batch, shuffled in training
    (``speechkit.data.sampler.fixed_count_loader``)."""
    return fixed_count_loader(cuts, WaveCropDataset(cfg, train), cfg.batch_size, cfg.num_workers,
                              train, seed, rank, world_size)  # fmt: skip
