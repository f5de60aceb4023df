"""Tests for speechkit/data/sampler.py."""

import copy
import random

import pytest
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

from speechkit.config import ConfigError, from_dict
from speechkit.data.sampler import (
    PaddingMeter,
    SamplerConfig,
    build_sampler,
    padding_fraction,
)


def _cuts(n=300, seed=0):
    rng = random.Random(seed)
    return CutSet.from_cuts(
        dummy_cut(i, duration=round(rng.uniform(0.5, 20.0), 2)) for i in range(n)
    )


def _epoch_padding(sampler):
    meter = PaddingMeter()
    for batch in sampler:
        meter.update(batch)
    return meter


def test_padding_fraction_helper():
    assert padding_fraction([2.0, 2.0]) == 0.0
    assert padding_fraction([1.0, 3.0]) == pytest.approx(1 - 4 / 6)
    meter = PaddingMeter()
    meter.update([1.0, 3.0])
    meter.update([2.0, 2.0])
    assert meter.value == pytest.approx(2 / 10) and meter.num_batches == 2
    meter.reset()
    assert meter.value == 0.0


def test_bucketing_pads_less_than_plain_sampling():
    cuts = _cuts()
    common = {"max_duration": 60.0, "max_cut_duration": 20.0, "buffer_size": 1000}
    bucketed = _epoch_padding(
        build_sampler(cuts, SamplerConfig(bucketing=True, num_buckets=8, **common))
    )
    plain = _epoch_padding(build_sampler(cuts, SamplerConfig(bucketing=False, **common)))
    assert bucketed.value < 0.5 * plain.value
    # Every cut is used exactly once per epoch and no batch exceeds the budget.
    sampler = build_sampler(cuts, SamplerConfig(**common))
    seen = [c.id for batch in sampler for c in batch]
    assert sorted(seen) == sorted(c.id for c in cuts)


def test_long_cuts_filtered_and_counted(tmp_path, caplog):
    cuts = _cuts(100)
    n_long = sum(c.duration > 10.0 for c in cuts)
    assert n_long > 0
    cfg = SamplerConfig(max_duration=40.0, max_cut_duration=10.0)
    caplog.set_level("WARNING")
    eager = build_sampler(cuts, cfg)
    assert eager.long_cut_filter.dropped == n_long
    assert f"dropped {n_long} of 100" in caplog.text
    assert all(c.duration <= 10.0 for batch in eager for c in batch)

    path = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(path)
    lazy = build_sampler(CutSet.from_file(path), cfg)
    n_kept = sum(len(b) for b in lazy)
    assert n_kept == 100 - n_long and lazy.long_cut_filter.dropped == n_long


@pytest.mark.parametrize("bucketing", [True, False])
def test_state_dict_restores_remaining_batches(bucketing):
    cuts = _cuts(200)
    cfg = SamplerConfig(max_duration=50.0, bucketing=bucketing, num_buckets=4, buffer_size=500)
    sampler = build_sampler(cuts, cfg, seed=7)
    sampler.set_epoch(1)
    epoch = [[c.id for c in b] for b in sampler]
    assert len(epoch) > 6

    sampler = build_sampler(cuts, cfg, seed=7)
    sampler.set_epoch(1)
    it = iter(sampler)
    for _ in range(5):
        next(it)
    # Copy, as writing a checkpoint would: lhotse's state_dict shares live diagnostics objects.
    state = copy.deepcopy(sampler.state_dict())
    remaining = epoch[5:]

    restored = build_sampler(cuts, cfg, seed=7)
    restored.load_state_dict(state)
    assert [[c.id for c in b] for b in restored] == remaining


def test_distributed_ranks_are_disjoint():
    cuts = _cuts(120)
    cfg = SamplerConfig(max_duration=40.0, num_buckets=4, drop_last=True)
    ids = [
        {c.id for b in build_sampler(cuts, cfg, seed=1, world_size=2, rank=r) for c in b}
        for r in (0, 1)
    ]
    assert ids[0] and ids[1] and not ids[0] & ids[1]


def test_config_validation():
    with pytest.raises(ConfigError, match="max_cut_duration"):
        from_dict(SamplerConfig, {"max_duration": 10.0, "max_cut_duration": 30.0})


@pytest.mark.parametrize("num_buckets, n_cuts", [(1, 5), (10, 1)])
def test_one_bucket_samples_every_cut(num_buckets, n_cuts):
    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0 + i) for i in range(n_cuts))
    cfg = SamplerConfig(max_duration=100.0, num_buckets=num_buckets)
    batches = list(build_sampler(cuts, cfg, seed=0))
    assert sorted(c.id for batch in batches for c in batch) == sorted(c.id for c in cuts)


@pytest.mark.parametrize("lazy", [False, True])
def test_fewer_cuts_than_buckets_still_samples_every_cut(tmp_path, lazy):
    cuts = CutSet.from_cuts(dummy_cut(i, duration=1.0 + i) for i in range(3))
    if lazy:
        cuts.to_file(tmp_path / "c.jsonl.gz")
        cuts = CutSet.from_jsonl_lazy(tmp_path / "c.jsonl.gz")
    sampler = build_sampler(cuts, SamplerConfig(max_duration=100.0, num_buckets=10), seed=0)
    assert sorted(c.id for batch in sampler for c in batch) == sorted(c.id for c in cuts)


def test_per_rank_streams_restart_the_epoch_under_another_group_size(caplog):
    cuts = _cuts(200)
    cfg = SamplerConfig(max_duration=50.0, num_buckets=4, buffer_size=500)
    sampler = build_sampler(cuts, cfg, seed=7, stream_group=2)  # one process: its own flag
    sampler.set_epoch(1)
    epoch = [[c.id for c in b] for b in sampler]
    it = iter(sampler)
    for _ in range(3):
        next(it)
    state = copy.deepcopy(sampler.state_dict())
    assert state["stream_group"] == 2
    same = build_sampler(cuts, cfg, seed=7, stream_group=2)
    same.load_state_dict(copy.deepcopy(state))
    assert [[c.id for c in b] for b in same] == epoch[3:]
    other = build_sampler(cuts, cfg, seed=7, stream_group=4)
    other.load_state_dict(state)
    assert "epoch 1 starts over" in caplog.text
    assert [[c.id for c in b] for b in other] == epoch
    with pytest.raises(ValueError, match="world_size=1"):
        build_sampler(cuts, cfg, world_size=2, stream_group=2)
