"""Waveform batches for models that learn from the audio itself (the codec): cuts -> crops.

Batch layout (``WaveCropDataset``)::

    audio       float32 (B, S)   S = segment samples; a cut shorter than that is zero-padded
    audio_lens  int64   (B,)     valid samples of each row
    cut_ids     list[str] (B)
    mel         float32 (B, M, F) only with a ``MelCrops`` spec: each crop's frames of a log-mel
                                 stored with the cut (F = S // hop + 1, frame f centred on
                                 sample f * hop of the crop; past the cut's end: silence)

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

__all__ = ["MelCrops", "WaveCropDataset", "WaveDataConfig", "build_wave_dataloader"]

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


@dataclass(frozen=True)
class MelCrops:
    """Where crops find their input mel: the cut's custom ``field`` (a lhotse array, (frames,
    bands), frame f centred on sample f * ``hop``), padded with ``silence`` past its end."""

    field: str
    hop: int
    silence: float


class WaveCropDataset(Dataset):
    """A batch of cuts -> the batch dict of the module docstring (None if no cut was usable)."""

    def __init__(self, cfg: WaveDataConfig, train: bool, mel: MelCrops | None = None):
        self.cfg, self.train, self.mel = cfg, train, mel
        self.segment = round(cfg.segment_seconds * cfg.sample_rate)
        self.skipped: Counter = Counter()

    def _start(self, samples: int) -> int:
        """The crop's first sample: random in training (on a frame boundary with ``mel``)."""
        if not self.train or samples <= self.segment:
            return 0
        if self.mel is None:
            return int(torch.randint(samples - self.segment + 1, ()))
        return self.mel.hop * int(torch.randint((samples - self.segment) // self.mel.hop + 1, ()))

    def _mel_crop(self, cut, start: int) -> torch.Tensor:
        """(M, S // hop + 1) frames of the cut's stored mel for the crop at ``start``."""
        stored = torch.from_numpy(cut.load_custom(self.mel.field)).float().T  # (M, T)
        first, frames = start // self.mel.hop, self.segment // self.mel.hop + 1
        crop = stored[:, first : first + frames]
        return torch.nn.functional.pad(crop, (0, frames - crop.size(1)), value=self.mel.silence)

    def __getitem__(self, cuts: CutSet) -> dict | None:
        rows, lens, ids, mels = [], [], [], []
        for cut in cuts:
            if self.mel is not None and not cut.has_custom(self.mel.field):
                logger.warning("cut %s has no %r (run speechkit tts-gta)", cut.id, self.mel.field)
                self.skipped["no stored mel"] += 1
                continue
            try:
                wave = torch.from_numpy(load_audio(cut, self.cfg.sample_rate))
            except AudioError as e:
                logger.warning("%s", e)
                self.skipped["unreadable audio"] += 1
                continue
            start = self._start(wave.numel())
            if self.mel is not None:
                mels.append(self._mel_crop(cut, start))
            crop = wave[start : start + self.segment]
            rows.append(torch.nn.functional.pad(crop, (0, self.segment - crop.numel())))
            lens.append(crop.numel())
            ids.append(cut.id)
        if not rows:
            return None
        batch = {
            "audio": torch.stack(rows),
            "audio_lens": torch.tensor(lens, dtype=torch.int64),
            "cut_ids": ids,
        }
        if mels:
            batch["mel"] = torch.stack(mels)
        return batch


def build_wave_dataloader(
    cuts: CutSet,
    cfg: WaveDataConfig,
    train: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    mel: MelCrops | None = None,
) -> tuple[DataLoader, DynamicCutSampler]:
    """``(loader, sampler)``: ``batch_size`` cuts per batch, shuffled in training
    (``speechkit.data.sampler.fixed_count_loader``); crops carry stored mels with ``mel``."""
    return fixed_count_loader(cuts, WaveCropDataset(cfg, train, mel), cfg.batch_size,
                              cfg.num_workers, train, seed, rank, world_size)  # fmt: skip
