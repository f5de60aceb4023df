"""Data pipeline: audio loading, features, SpecAugment, task expansion, samplers, the dataset."""

from speechkit.data.audio import AudioError, load_audio
from speechkit.data.dataset import DataConfig, S2TDataset, build_data_sampler, build_dataloader
from speechkit.data.features import FeatureConfig, LogMel
from speechkit.data.perturb import SpeedPerturbation
from speechkit.data.sampler import (
    PaddingMeter,
    SamplerConfig,
    build_sampler,
    padding_fraction,
)
from speechkit.data.segments import annotate_previous_text, split_supervisions
from speechkit.data.specaug import SpecAugConfig, SpecAugment
from speechkit.data.tasks import expand_tasks

__all__ = [
    "AudioError",
    "DataConfig",
    "FeatureConfig",
    "LogMel",
    "PaddingMeter",
    "S2TDataset",
    "SamplerConfig",
    "SpecAugConfig",
    "SpecAugment",
    "SpeedPerturbation",
    "annotate_previous_text",
    "build_data_sampler",
    "build_dataloader",
    "build_sampler",
    "expand_tasks",
    "load_audio",
    "padding_fraction",
    "split_supervisions",
]
