"""Every YAML in conf/ loads into its typed config, and the model shapes it names are right."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from speechkit.models import build_model
from speechkit.train.config import ExperimentConfig, load_experiment_config
from speechkit.train.finetune_config import FinetuneConfig, load_finetune_config

CONF = Path(__file__).resolve().parents[1] / "conf"
ALL_YAML = sorted(CONF.rglob("*.yaml"))

# Published OWSM v3.1 sizes (ESPnet model cards), in millions of parameters, with a 50k vocabulary.
OWSM_PARAMS_M = {"owsm_v3.1_base": 101, "owsm_v3.1_small": 367, "owsm_v3.1_medium": 1020}


def test_conf_dir_is_not_empty():
    assert len(ALL_YAML) >= 4


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONF)))
def test_every_yaml_loads_and_validates(path):
    if path.parent.name == "whisper":  # fine-tuning configs: the model comes from --init
        assert isinstance(load_finetune_config(path), FinetuneConfig)
        return
    cfg = load_experiment_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.data.features.n_mels == cfg.model.n_mels


@pytest.mark.parametrize("name", sorted(OWSM_PARAMS_M))
def test_owsm_shapes_match_published_sizes(name):
    cfg = load_experiment_config(CONF / "s2t" / f"{name}.yaml")
    model_cfg = cfg.model
    if model_cfg.vocab_size == 0:
        model_cfg = dataclasses.replace(model_cfg, vocab_size=50000)
    with torch.device("meta"):  # shapes only: no memory, no time
        model = build_model(model_cfg)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(millions - OWSM_PARAMS_M[name]) / OWSM_PARAMS_M[name] < 0.05, millions
