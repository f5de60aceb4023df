"""Tests for speechkit/train/batch_search.py (tiny model, CPU memory accounting)."""

import gc
import weakref

import pytest
import torch

from speechkit.data.buckets import BucketGrid
from speechkit.models import build_model
from speechkit.models.s2t import S2TConfig
from speechkit.train.batch_search import (
    GIB,
    SearchSettings,
    cpu_step_bytes,
    largest_fitting,
    search_grid,
    synthetic_batch,
)

CFG = S2TConfig(
    n_mels=8, vocab_size=30, d_model=16, n_heads=2, encoder_type="transformer",
    encoder_layers=1, encoder_ffn=32, decoder_layers=1, decoder_ffn=32, dropout=0.0,
    attention_dropout=0.0, max_target_positions=40,
)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny steps: torch's thread pool only adds contention on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("limit", [1, 2, 5, 37, 64, 100])
def test_largest_fitting_finds_the_threshold_in_few_probes(limit):
    calls = []

    def fits(b):
        calls.append(b)
        return b <= limit

    assert largest_fitting(fits, max_batch=100) == limit
    assert len(calls) <= 2 * 7 + 1  # doubling then bisection: O(log max_batch)
    assert largest_fitting(lambda b: False, 100) == 0
    for guess in (1, limit, 3 * limit, 500):
        assert largest_fitting(lambda b: b <= limit, 100, guess) == limit
    calls.clear()
    largest_fitting(fits, 100, guess=limit)
    # A right guess is confirmed by two probes (one at max_batch, where nothing is larger).
    assert calls == ([limit] if limit == 100 else [limit, limit + 1])


def test_synthetic_batch_has_the_bucket_shapes():
    b = synthetic_batch(1.234, 9, batch=3, targets_per_cut=2, cfg=CFG)
    assert b["feats"].shape == (3, 124, 8) and b["ys_in"].shape == (6, 13)
    assert b["target_utt"].tolist() == [0, 0, 1, 1, 2, 2]
    assert b["ctc_targets"].shape == (3, 9) and int(b["ys_in"].max()) < CFG.vocab_size


def test_cpu_step_bytes_measures_activations():
    torch.manual_seed(0)
    model = build_model(CFG)
    params = sum(p.numel() * 4 for p in model.parameters())
    one = cpu_step_bytes(model, synthetic_batch(1.0, 5, 1, 1, CFG))
    two = cpu_step_bytes(model, synthetic_batch(1.0, 5, 2, 1, CFG))
    four = cpu_step_bytes(model, synthetic_batch(1.0, 5, 4, 1, CFG))
    longer = cpu_step_bytes(model, synthetic_batch(2.0, 5, 2, 1, CFG))
    assert one > 4 * params
    act = [x - 4 * params for x in (one, two, four)]
    assert act[2] == pytest.approx(2 * act[1], rel=0.15)  # activations grow with the batch
    assert longer > 1.5 * two - 4 * params  # ... and with the duration
    assert all(p.grad is None for p in model.parameters())


class _SavesItsOutput(torch.nn.Module):
    """``sigmoid`` saves its own output for backward, like softmax and SDPA in the model."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(8))
        self.outputs = []

    def forward(self, feats, *args, **kwargs):
        y = torch.sigmoid(feats * self.w)
        self.outputs.append(weakref.ref(y))
        return {"loss": y.sum()}


def test_cpu_step_bytes_without_backward_frees_the_graph():
    # A saved output handed back by the pack hook as itself forms a C++ reference cycle with
    # its grad_fn: every forward-only measurement leaked its whole graph.
    model = _SavesItsOutput()
    cpu_step_bytes(model, synthetic_batch(1.0, 5, 2, 1, CFG), backward=False)
    gc.collect()
    assert len(model.outputs) == 1 and model.outputs[0]() is None


def test_search_gives_long_buckets_smaller_batches_that_just_fit():
    grid = BucketGrid([1.0, 4.0], [[5], [5, 20]], targets_per_cut=2)
    settings = SearchSettings(memory_gib=0.002, margin=1.0, max_batch=64, device="cpu")
    sizes = search_grid(CFG, grid, settings)
    flat = [b for row in sizes for b in row]
    assert len(sizes) == 2 and [len(r) for r in sizes] == [1, 2]
    assert flat[0] > flat[1] >= flat[2] >= 1 and flat[0] < 64
    torch.manual_seed(0)
    model = build_model(CFG)
    for (d, t), b in zip(grid.shapes(), flat):
        assert cpu_step_bytes(model, synthetic_batch(d, t, b, 2, CFG)) <= 0.002 * GIB
        assert cpu_step_bytes(model, synthetic_batch(d, t, b + 1, 2, CFG)) > 0.002 * GIB


def test_cpu_search_needs_a_budget_and_a_fitting_cut():
    grid = BucketGrid([1.0], [[5]])
    with pytest.raises(ValueError, match="memory-gib"):
        search_grid(CFG, grid, SearchSettings(device="cpu"))
    with pytest.raises(RuntimeError, match="does not fit"):
        search_grid(CFG, grid, SearchSettings(memory_gib=1e-6, device="cpu"))
