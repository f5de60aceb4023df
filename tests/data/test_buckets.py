"""Tests for speechkit/data/buckets.py and the 2D / elastic paths of speechkit/data/sampler.py."""

import copy
import random

import numpy as np
import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechkit.config import ConfigError
from speechkit.data.buckets import (
    Bucket2DConstraint,
    BucketGrid,
    TokenCounter,
    decoder_texts,
    estimate_grid,
)
from speechkit.data.sampler import SamplerConfig, build_sampler


class WordTokenizer:
    """Stands in for the sentencepiece tokenizer: one piece per word."""

    def encode(self, text):
        return list(range(len(text.split())))


def _cuts(n=240, seed=0):
    """Durations 0.5-20 s; text length independent of duration (as for translations)."""
    rng = random.Random(seed)
    cuts = []
    for i in range(n):
        cut = dummy_cut(i, duration=round(rng.uniform(0.5, 20.0), 2))
        words = " ".join(["w"] * rng.randint(1, 60))
        cut.supervisions = [
            SupervisionSegment(f"s{i}", cut.recording_id, 0.0, cut.duration, text=words)
        ]
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def _grid_file(tmp_path, cuts, batch_sizes=None, **targets):
    count = TokenCounter(WordTokenizer())
    targets = {"min_bucket_seconds": 150.0, **targets}
    grid = estimate_grid([c.duration for c in cuts], [count(c) for c in cuts], **targets)
    if batch_sizes is not None:
        grid.batch_sizes = [[batch_sizes] * len(r) for r in grid.token_edges]
    path = tmp_path / "buckets.yaml"
    grid.save(path)
    return path, grid


def _frame_padding(batches):
    real = padded = 0.0
    for batch in batches:
        durs = [c.duration for c in batch]
        real += sum(durs)
        padded += max(durs) * len(durs)
    return 1 - real / padded


def _token_padding(batches):
    count = TokenCounter(WordTokenizer())
    real = padded = 0
    for batch in batches:
        lens = [count(c) for c in batch]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return 1 - real / padded


def _padding(values):
    return 1 - sum(values) / (len(values) * max(values))


@pytest.mark.parametrize("spread", ["long-tailed", "narrow"])
def test_estimate_grid_meets_its_padding_targets(spread):
    rng = random.Random(1)
    if spread == "narrow":  # phrasebook-like: 1-3.5 s
        durs = [rng.uniform(1.0, 3.5) for _ in range(3000)]
    else:
        durs = [min(35.0, rng.lognormvariate(1.8, 0.75)) for _ in range(3000)]
    toks = [rng.randint(1, 100) for _ in range(3000)]  # independent of duration
    grid = estimate_grid(durs, toks, max_frame_padding=0.03, max_token_padding=0.1,
                         min_bucket_seconds=100.0, max_token_buckets=4)  # fmt: skip
    assert grid.duration_edges[-1] == max(durs)
    members = [[] for _ in range(grid.num_buckets)]
    for d, t in zip(durs, toks):
        b = grid.index(d, t)
        max_d, max_t = grid.shapes()[b]
        assert d <= max_d and t <= max_t  # the bucket's edges bound its cuts (batch search)
        members[b].append((d, t))
    rows = np.cumsum([0] + [len(r) for r in grid.token_edges])
    for r in range(len(grid.duration_edges)):
        row = [m for b in range(rows[r], rows[r + 1]) for m in members[b]]
        # A row pads at most the target, unless it is a minimum-size row (sparse tail).
        assert _padding([d for d, _ in row]) <= 0.03 or sum(d for d, _ in row) < 200.0
        for b in range(rows[r], rows[r + 1]):
            assert sum(d for d, _ in members[b]) >= 100.0  # every bucket fills a few batches
    # Rows with audio to spare get token columns, never more than max_token_buckets.
    assert 2 <= max(len(r) for r in grid.token_edges) <= 4
    all_tokens_padding = np.mean([_padding([t for _, t in m]) for m in members])
    assert all_tokens_padding < 0.75 * _padding(toks)


def test_estimate_grid_has_few_rows_for_tight_durations():
    tight = estimate_grid([2.0, 2.01, 2.02] * 100, [5, 6, 7] * 100, min_bucket_seconds=10.0)
    assert len(tight.duration_edges) == 1 and tight.token_edges == [[5, 6, 7]]
    with pytest.raises(ValueError, match="padding targets"):
        estimate_grid([1.0], [1], max_frame_padding=1.5)


def test_grid_yaml_round_trip_and_errors(tmp_path):
    grid = BucketGrid([2.0, 5.0], [[3, 9], [4]], batch_sizes=[[8, 4], [2]], tokenizer="tok")
    grid.save(tmp_path / "b.yaml")
    assert BucketGrid.load(tmp_path / "b.yaml") == grid
    assert grid.index(7.0, 99) == 2 and grid.index(1.0, 5) == 1 and grid.index(1.0, 1) == 0
    with pytest.raises(ValueError, match="rise strictly"):
        BucketGrid([5.0, 2.0], [[1], [1]])
    with pytest.raises(ValueError, match="batch_sizes"):
        BucketGrid([2.0], [[3, 9]], batch_sizes=[[1]])
    (tmp_path / "bad.yaml").write_text("duration_edges: [1.0]\ntoken_edges: [[2]]\ncolour: 3\n")
    with pytest.raises(ValueError, match="bad.yaml.*colour"):
        BucketGrid.load(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="estimate_buckets"):
        BucketGrid.load(tmp_path / "missing.yaml")


def test_decoder_texts_follow_task():
    cut = dummy_cut(0)
    cut.supervisions = [
        SupervisionSegment(
            "s", cut.recording_id, 0, 1, text="a b", custom={"translations": {"deu": "x y z"}}
        )
    ]
    assert decoder_texts(cut) == ["a b", "x y z"]
    cut.custom = {"task": "st_deu"}
    assert decoder_texts(cut) == ["x y z"]
    assert TokenCounter(WordTokenizer())(cut) == 3


def test_2d_buckets_pad_few_frames_and_fewer_tokens_than_1d(tmp_path):
    cuts = _cuts(600)
    path, grid = _grid_file(tmp_path, cuts, min_bucket_seconds=60.0)
    common = {"max_duration": 60.0, "max_cut_duration": 20.0, "buffer_size": 1000}
    # 1D with as many duration buckets as the grid has rows: 2D must win on tokens alone.
    rows = len(grid.duration_edges)
    one_d = list(build_sampler(cuts, SamplerConfig(num_buckets=rows, **common)))
    cfg = SamplerConfig(buckets=str(path), **common)
    two_d = list(build_sampler(cuts, cfg, tokenizer=WordTokenizer()))
    assert sorted(c.id for b in two_d for c in b) == sorted(c.id for c in cuts)
    assert _frame_padding(two_d) <= 0.05
    assert _token_padding(two_d) < 0.75 * _token_padding(one_d)
    # Without batch sizes in the file, a batch holds floor(max_duration / edge) cuts at most.
    grid = BucketGrid.load(path)
    constraint = Bucket2DConstraint(grid, TokenCounter(WordTokenizer()), max_duration=60.0)
    for batch in two_d:
        buckets = {constraint.bucket_of(c) for c in batch}
        assert len(buckets) == 1
        assert len(batch) <= constraint.batch_sizes[buckets.pop()]


def test_per_bucket_batch_sizes_are_used(tmp_path):
    cuts = _cuts()
    path, _ = _grid_file(tmp_path, cuts, batch_sizes=5)
    cfg = SamplerConfig(buckets=str(path), max_duration=60.0, max_cut_duration=20.0)
    sizes = [len(b) for b in build_sampler(cuts, cfg, tokenizer=WordTokenizer())]
    assert max(sizes) == 5 and sum(sizes) == len(cuts)


def test_2d_sampler_restores_from_state_dict(tmp_path):
    cuts = _cuts(200)
    path, _ = _grid_file(tmp_path, cuts)
    cfg = SamplerConfig(buckets=str(path), max_duration=40.0, max_cut_duration=20.0)

    def make():
        s = build_sampler(cuts, cfg, seed=3, tokenizer=WordTokenizer())
        s.set_epoch(2)
        return s

    epoch = [[c.id for c in b] for b in make()]
    sampler = make()
    it = iter(sampler)
    for _ in range(4):
        next(it)
    state = copy.deepcopy(sampler.state_dict())
    restored = make()
    restored.load_state_dict(state)
    assert [[c.id for c in b] for b in restored] == epoch[4:]


@pytest.mark.parametrize("two_d", [False, True])
def test_resume_with_a_different_world_size_uses_every_cut_once(tmp_path, two_d):
    cuts = _cuts(200)
    path, _ = _grid_file(tmp_path, cuts)
    cfg = SamplerConfig(
        max_duration=40.0,
        max_cut_duration=20.0,
        num_buckets=4,
        buckets=str(path) if two_d else None,
    )

    def make(ws, rank):
        s = build_sampler(cuts, cfg, seed=5, world_size=ws, rank=rank, tokenizer=WordTokenizer())
        s.set_epoch(1)
        return s

    seen, states = [], []
    for rank in (0, 1):
        sampler = make(2, rank)
        it = iter(sampler)
        seen += [c.id for _ in range(3) for c in next(it)]
        states.append(copy.deepcopy(sampler.state_dict()))
    restored = make(1, 0)
    restored.load_state_dict(states[0])
    rest = [c.id for b in restored for c in b]
    assert rest and sorted(seen + rest) == sorted(c.id for c in cuts)


def test_buckets_need_bucketing():
    with pytest.raises(ConfigError, match="bucketing: true"):
        SamplerConfig(bucketing=False, buckets="b.yaml")
