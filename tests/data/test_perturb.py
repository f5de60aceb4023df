"""Tests for speechkit/data/perturb.py: speed factors by (seed, epoch, cut), applied lazily."""

import copy
import random
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording
from lhotse.testing.dummies import dummy_cut

from speechkit.data.audio import load_audio
from speechkit.data.perturb import SpeedPerturbation
from speechkit.data.sampler import SamplerConfig, build_sampler

FACTORS = [0.9, 1.0, 1.1]


def test_factors_depend_on_seed_epoch_and_cut_only():
    p = SpeedPerturbation(FACTORS, seed=3)
    ids = [f"cut-{i}" for i in range(600)]
    epoch0 = [p.factor(i, 0) for i in ids]
    assert epoch0 == [SpeedPerturbation(FACTORS, seed=3).factor(i, 0) for i in ids]
    assert epoch0 != [p.factor(i, 1) for i in ids]  # a new draw each epoch
    assert epoch0 != [SpeedPerturbation(FACTORS, seed=4).factor(i, 0) for i in ids]
    counts = Counter(epoch0)
    assert set(counts) == set(FACTORS) and min(counts.values()) > 150  # about uniform


def test_perturbed_cut_is_shorter_and_higher(tmp_path):
    sr = 16000
    path = tmp_path / "tone.flac"
    sf.write(path, np.sin(2 * np.pi * 300 * np.arange(sr) / sr).astype(np.float32), sr)
    rec = Recording.from_file(path)
    cut = MonoCut("tone", 0.0, rec.duration, 0, recording=rec)
    p = SpeedPerturbation([1.25])
    fast = p.perturb(cut, epoch=0)
    assert fast.id == cut.id and fast.duration == pytest.approx(1.0 / 1.25)
    wave = load_audio(fast, sr)
    assert len(wave) == round(sr / 1.25)
    spectrum = np.abs(np.fft.rfft(wave[100:-100] * np.hanning(len(wave) - 200)))
    peak_hz = np.argmax(spectrum) * sr / (len(wave) - 200)
    assert abs(peak_hz - 300 * 1.25) < 5  # pitch rises with tempo: speed, not tempo, perturbation
    assert SpeedPerturbation([1.0]).perturb(cut, epoch=0) is cut


def _cuts(n=200, seed=0):
    rng = random.Random(seed)
    return CutSet.from_cuts(
        dummy_cut(i, duration=round(rng.uniform(0.5, 10.0), 2)) for i in range(n)
    )


def _sampler(cuts, cfg, seed=7):
    p = SpeedPerturbation(FACTORS, seed=seed)
    sampler = build_sampler(p.apply(cuts), cfg, seed=seed)
    p.follow(sampler)
    return sampler


def _shape(batches):
    return [[(c.id, round(c.duration, 6)) for c in b] for b in batches]


@pytest.mark.parametrize("bucketing", [True, False])
def test_sampler_budgets_perturbed_durations_and_resumes(bucketing):
    cuts = _cuts()
    original = {c.id: c.duration for c in cuts}
    cfg = SamplerConfig(
        max_duration=30.0, max_cut_duration=12.0, bucketing=bucketing, num_buckets=4
    )
    sampler = _sampler(cuts, cfg)
    sampler.set_epoch(1)
    epoch = _shape(sampler)
    assert len(epoch) > 6
    assert sorted(i for b in epoch for i, _ in b) == sorted(original)
    assert all(sum(d for _, d in b) <= 30.0 for b in epoch)
    p = SpeedPerturbation(FACTORS, seed=7)
    for b in epoch:  # durations are the epoch's perturbed ones
        for cut_id, d in b:
            assert d == pytest.approx(original[cut_id] / p.factor(cut_id, 1), abs=1e-4)
    sampler.set_epoch(2)
    assert _shape(sampler) != epoch
    assert all(c.has_features for c in cuts)  # the source cuts are not modified

    # Mid-epoch checkpoint of epoch 1, restored into a fresh sampler: the same remaining batches.
    sampler = _sampler(cuts, cfg)
    sampler.set_epoch(1)
    it = iter(sampler)
    for _ in range(4):
        next(it)
    state = copy.deepcopy(sampler.state_dict())
    restored = _sampler(cuts, cfg)
    restored.load_state_dict(state)
    assert _shape(restored) == epoch[4:]
