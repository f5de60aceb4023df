"""The config of a Whisper fine-tuning run (``speechkit.bin.finetune_whisper``).

The model's dimensions come from the pretrained model (``--init``), not from YAML; the YAML in
``conf/whisper/`` says what to train and how: which parameters move (``whisper``), which tasks
the cuts become (``data``), the optimiser (``optim``) and the loop (``trainer``). Fine-tuning is
budgeted in updates, so ``trainer.max_steps`` must be set.

Example::

    cfg = load_finetune_config("conf/whisper/finetune_tiny_en.yaml", ["optim.lr=2e-5"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from speechkit.config import ConfigError, load_config
from speechkit.data.dataset import DataConfig
from speechkit.data.features import FeatureConfig
from speechkit.data.sampler import SamplerConfig
from speechkit.data.specaug import SpecAugConfig
from speechkit.data.tasks import parse_direction
from speechkit.train.config import OptimConfig, TrainerConfig

__all__ = [
    "FinetuneConfig",
    "WhisperDataConfig",
    "WhisperFinetuneOptions",
    "load_finetune_config",
]


@dataclass
class WhisperFinetuneOptions:
    """What moves and what the model sees.

    freeze_encoder: train the decoder only (the encoder then runs without autograd: about 3x
        cheaper per step, and the acoustic model Whisper learned is kept as is).
    pad_to_window: pad every utterance to Whisper's 30 s window, as at decoding time (see
        ``data/whisper_dataset.py``); False trains on unpadded utterances (cheaper, mismatched).
    label_smoothing: of the decoder cross-entropy (0 = none).
    attention_backend: ``sdpa``, ``eager`` or ``triton`` (see docs/design.md).
    """

    freeze_encoder: bool = False
    pad_to_window: bool = True
    label_smoothing: float = 0.0
    attention_backend: Literal["sdpa", "eager", "triton"] = "sdpa"


def _utterance_batches() -> SamplerConfig:
    # Padded to 30 s every utterance costs the same, so batches of similar durations save
    # nothing: one shuffled stream, ~8 phrasebook utterances (2-3 s) per 20 s batch.
    return SamplerConfig(max_duration=20.0, max_cut_duration=20.0, num_buckets=1, bucketing=False)


@dataclass
class WhisperDataConfig:
    """Cuts -> batches. The front end is not configurable: it is the ``--init`` model's.

    asr_languages / st_directions: the tasks each cut becomes (ISO 639-3; directions
        ``<src>-eng`` only). max_target_tokens: longer targets are skipped (Whisper's decoder
        has 448 positions). specaug: off by default (Whisper was trained without it).
    """

    sampler: SamplerConfig = field(default_factory=_utterance_batches)
    asr_languages: list[str] = field(default_factory=lambda: ["eng"])
    st_directions: list[str] = field(default_factory=list)
    max_target_tokens: int = 440
    specaug: SpecAugConfig = field(default_factory=lambda: SpecAugConfig(enabled=False))
    num_workers: int = 0

    def __post_init__(self) -> None:
        for direction in self.st_directions:
            try:
                target = parse_direction(direction)[1]
            except ValueError as e:
                raise ConfigError(f"data.st_directions: {e}") from None
            if target != "eng":
                raise ConfigError(
                    f"data.st_directions: {direction!r}: Whisper translates only into English; "
                    "use '<src>-eng' directions"
                )
        if not 1 <= self.max_target_tokens <= 443:
            raise ConfigError(
                f"data.max_target_tokens must lie in [1, 443] (448 decoder positions minus "
                f"prefix and <|endoftext|>), got {self.max_target_tokens}"
            )
        if not self.asr_languages and not self.st_directions:
            raise ConfigError("data.asr_languages and data.st_directions are both empty")

    def data_config(self, features: FeatureConfig) -> DataConfig:
        """The dataset's ``DataConfig`` with the model's front end ``features``."""
        return DataConfig(
            features=features,
            specaug=self.specaug,
            sampler=self.sampler,
            asr_languages=list(self.asr_languages),
            st_directions=list(self.st_directions),
            max_target_tokens=self.max_target_tokens,
            num_workers=self.num_workers,
        )


def _fine_tuning_optim() -> OptimConfig:
    return OptimConfig(lr=1e-5, betas=(0.9, 0.98), eps=1e-8, warmup_steps=20, grad_clip=1.0)


@dataclass
class FinetuneConfig:
    """One fine-tuning run (see module docstring)."""

    whisper: WhisperFinetuneOptions = field(default_factory=WhisperFinetuneOptions)
    data: WhisperDataConfig = field(default_factory=WhisperDataConfig)
    optim: OptimConfig = field(default_factory=_fine_tuning_optim)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=200))

    def __post_init__(self) -> None:
        if self.trainer.max_steps <= 0:
            raise ConfigError(
                "trainer.max_steps must be > 0: a fine-tuning run is budgeted in updates"
            )
        if not 0.0 <= self.whisper.label_smoothing < 1.0:
            raise ConfigError(
                f"whisper.label_smoothing must lie in [0, 1), got {self.whisper.label_smoothing}"
            )


def load_finetune_config(path: str | Path, overrides: list[str] | None = None) -> FinetuneConfig:
    """Loads a fine-tuning YAML, applying ``key.path=value`` overrides (values parsed as YAML)."""
    return load_config(FinetuneConfig, path, overrides)
