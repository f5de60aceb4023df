"""Every YAML in conf/ loads into its typed config, and the model shapes it names are right."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from speechkit.config import load_config, read_yaml
from speechkit.models import build_model
from speechkit.tasks import get_task
from speechkit.train.config import ExperimentConfig, load_experiment_config

CONF = Path(__file__).resolve().parents[1] / "conf"
ALL_YAML = sorted(CONF.rglob("*.yaml"))

# Published OWSM v3.1 sizes (ESPnet model cards), in millions of parameters, with a 50k vocabulary.
OWSM_PARAMS_M = {"owsm_v3.1_base": 101, "owsm_v3.1_small": 367, "owsm_v3.1_medium": 1020}


def test_conf_dir_is_not_empty():
    assert len(ALL_YAML) >= 4


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONF)))
def test_every_yaml_names_its_task_and_loads_into_that_tasks_config(path):
    name = read_yaml(path).get("task")
    assert name is not None, f"{path} names no task"
    cfg = load_config(get_task(name).config_class, path)
    assert cfg.task == name
    if isinstance(cfg, ExperimentConfig):  # (whisper configs take the model from --init)
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
