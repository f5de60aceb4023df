"""Models and the registry that builds them from a config.

Example::

    from speechkit.models import build_model, count_parameters
    model = build_model(S2TConfig(vocab_size=tok.vocab_size))
    print(count_parameters(model))
"""

from __future__ import annotations

from torch import nn

from speechkit.models.convtasnet_baseline import ConvTasNetBaseline, ConvTasNetBaselineConfig
from speechkit.models.gated_s2t import GatedS2TConfig, GatedS2TModel
from speechkit.models.gated_whisper import GatedWhisperConfig, GatedWhisperModel
from speechkit.models.s2t import OWSM_V31_PRESETS, S2TConfig, S2TModel
from speechkit.models.separation import Separator, SeparatorConfig
from speechkit.models.tagger import Tagger, TaggerConfig
from speechkit.models.whisper import WHISPER_DIMS, WhisperConfig, WhisperModel

__all__ = [
    "MODELS",
    "MODEL_CONFIGS",
    "ConvTasNetBaseline",
    "ConvTasNetBaselineConfig",
    "GatedS2TConfig",
    "GatedS2TModel",
    "GatedWhisperConfig",
    "GatedWhisperModel",
    "OWSM_V31_PRESETS",
    "S2TConfig",
    "S2TModel",
    "Separator",
    "SeparatorConfig",
    "Tagger",
    "TaggerConfig",
    "WHISPER_DIMS",
    "WhisperConfig",
    "WhisperModel",
    "build_model",
    "count_parameters",
]

# name -> model class; each class takes its config dataclass as the only argument.
MODELS: dict[str, type[nn.Module]] = {
    "s2t": S2TModel,
    "whisper": WhisperModel,
    "separator": Separator,
    "tagger": Tagger,
    "gated_s2t": GatedS2TModel,
    "gated_whisper": GatedWhisperModel,
    "convtasnet": ConvTasNetBaseline,
}
# name -> config dataclass of that model (what a packed config.yaml's ``model`` section fills).
MODEL_CONFIGS: dict[str, type] = {
    "s2t": S2TConfig,
    "whisper": WhisperConfig,
    "separator": SeparatorConfig,
    "tagger": TaggerConfig,
    "gated_s2t": GatedS2TConfig,
    "gated_whisper": GatedWhisperConfig,
    "convtasnet": ConvTasNetBaselineConfig,
}


def build_model(cfg, name: str = "s2t") -> nn.Module:
    """Builds the registered model ``name`` from ``cfg``; ConfigError if cfg cannot be built."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    if type(cfg) is not MODEL_CONFIGS[name]:  # exact: a GatedS2TConfig is an S2TConfig too
        raise TypeError(
            f"model {name!r} is built from a {MODEL_CONFIGS[name].__name__}, "
            f"got {type(cfg).__name__}"
        )
    return MODELS[name](cfg)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared/tied tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
