"""Text queries: held-out phrasings never occur in training; background words are filled in."""

from __future__ import annotations

import random

import pytest

from speechkit.data.queries import HELDOUT, TRAIN, describe


def test_heldout_phrasings_are_disjoint_from_training():
    assert set(HELDOUT) == set(TRAIN)
    for name in TRAIN:
        assert not set(HELDOUT[name]) & set(TRAIN[name])


def test_describe_fills_the_background_and_rejects_unknown_targets():
    rng = random.Random(0)
    texts = {describe("speech", "music", rng) for _ in range(50)}
    assert not any("{bg}" in t for t in texts)
    assert any(w in t for t in texts for w in ("music", "a song", "chords"))
    assert describe("beeps", "beeps", random.Random(1), heldout=True) in HELDOUT["beeps"]
    with pytest.raises(ValueError, match="no descriptions for 'sirens'"):
        describe("sirens", "noise", rng)
