"""Weight-decay groups and learning-rate schedule shapes."""

from __future__ import annotations

import itertools
import math

import pytest
from torch import nn

from speechkit.config import ConfigError
from speechkit.train.config import OptimConfig, TrainerConfig
from speechkit.train.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    param_groups,
)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.lin = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.embed.weight  # tied, like the decoder's output projection


def test_param_groups_exclude_biases_norms_and_embeddings():
    model = Tiny()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.lin.weight)}
    expected = {
        id(model.lin.bias),
        id(model.norm.weight),
        id(model.norm.bias),
        id(model.embed.weight),
    }
    assert {id(p) for p in no_decay["params"]} == expected
    assert len(build_optimizer(model, OptimConfig()).param_groups) == 2


def curve(scheduler: str, total: int = 100, warmup: int = 10) -> list[float]:
    cfg = OptimConfig(scheduler=scheduler, warmup_steps=warmup, min_lr_ratio=0.1)
    return [lr_factor(s, cfg, total) for s in range(total + 20)]


@pytest.mark.parametrize("name", ["warmup_cosine", "noam", "warmup_linear", "constant"])
def test_every_schedule_warms_up_linearly_to_the_peak(name):
    f = curve(name)
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert max(f) == pytest.approx(1.0)


def test_decaying_schedules_end_at_the_floor_and_hold():
    for name in ("warmup_cosine", "warmup_linear"):
        f = curve(name)
        assert all(a >= b for a, b in itertools.pairwise(f[9:]))  # monotone after warmup
        assert f[99] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    cos, lin = curve("warmup_cosine"), curve("warmup_linear")
    assert cos[30] > lin[30]  # cosine stays high early, then drops
    assert lin[54] == pytest.approx(0.1 + 0.9 * 0.5, abs=0.02)


def test_noam_decays_as_inverse_square_root_and_constant_stays():
    f = curve("noam")
    assert f[39] == pytest.approx(math.sqrt(10 / 40))
    assert set(curve("constant")[10:]) == {1.0}


def test_scheduler_drives_optimizer_lr_and_round_trips_state():
    model = nn.Linear(2, 2)
    cfg = OptimConfig(lr=0.01, warmup_steps=4, scheduler="warmup_cosine")
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total_steps=20)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    again = build_scheduler(build_optimizer(model, cfg), cfg, total_steps=20)
    again.load_state_dict(sched.state_dict())
    assert again.get_last_lr() == pytest.approx(sched.get_last_lr())


def test_bad_optim_values_are_config_errors():
    with pytest.raises(ConfigError, match="accum_grad"):
        TrainerConfig(accum_grad=0)
    with pytest.raises(ConfigError, match="noam"):
        OptimConfig(scheduler="noam", warmup_steps=0)
    with pytest.raises(ConfigError, match="betas"):
        OptimConfig(betas=(0.9, 1.5))
