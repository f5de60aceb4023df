"""ExperimentConfig loading and cross-field checks."""

from __future__ import annotations

import pytest

from speechkit.config import ConfigError, to_dict
from speechkit.train.config import (
    ExperimentConfig,
    TrainerConfig,
    load_experiment_config,
)


def test_load_with_overrides_round_trips(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("model: {n_mels: 40}\ndata: {features: {n_mels: 40}}\noptim: {lr: 0.01}\n")
    cfg = load_experiment_config(path, ["optim.scheduler=noam", "trainer.max_minutes=1.5"])
    assert cfg.optim.lr == 0.01 and cfg.optim.scheduler == "noam"
    assert cfg.trainer.max_minutes == 1.5 and cfg.model.n_mels == 40
    assert cfg.optim.betas == (0.9, 0.98)
    assert load_experiment_config(path, ["optim.scheduler=noam", "trainer.max_minutes=1.5"]) == cfg
    assert to_dict(cfg)["optim"]["betas"] == [0.9, 0.98]


def test_n_mels_mismatch_names_both_keys(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("model: {n_mels: 80}\ndata: {features: {n_mels: 128}}\n")
    with pytest.raises(ConfigError, match=r"x.yaml.*data.features.n_mels \(128\).*model.n_mels"):
        load_experiment_config(path)


def test_target_length_must_fit_the_decoder_positions(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("model: {max_target_positions: 100}\ndata: {max_target_tokens: 200}\n")
    with pytest.raises(ConfigError, match="max_target_tokens"):
        load_experiment_config(path)


def test_unknown_and_bad_trainer_values_are_errors(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("trainer: {max_epoch: 3}\n")
    with pytest.raises(ConfigError, match="trainer.max_epoch"):
        load_experiment_config(path)
    with pytest.raises(ConfigError, match="max_minutes"):
        TrainerConfig(max_minutes=-1)
    with pytest.raises(ConfigError, match="device"):
        TrainerConfig(device="tpu")
    assert ExperimentConfig().trainer.amp == "auto"
