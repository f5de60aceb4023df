"""The pretrained query encoders (bundled weights, offline): bad enrollments are clear errors,
d-vectors are unit vectors that tell voices apart, text embeddings keep paraphrases close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sentence_transformers", reason="the separation extra is not installed")
from speechkit.models.query_encoders import EnrollmentError, SentenceEncoder, SpeakerEncoder  # noqa: E402


def _voice(f0: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.1 * env * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def speaker():
    return SpeakerEncoder()


def test_silent_short_or_empty_enrollment_is_refused(speaker):
    with pytest.raises(EnrollmentError, match="silent"):
        speaker(np.zeros(32000, np.float32))
    with pytest.raises(EnrollmentError, match="0.50 s long"):
        speaker(_voice(120, 0.5))
    with pytest.raises(EnrollmentError, match="0.00 s"):
        speaker(np.zeros(0, np.float32))


def test_dvectors_are_unit_vectors_closer_for_the_same_voice(speaker):
    low_a, low_b, high = speaker(_voice(100, 2.0)), speaker(_voice(100, 3.0)), speaker(_voice(300))
    assert low_a.shape == (256,) and abs(float(low_a.norm()) - 1) < 1e-5
    assert float(low_a @ low_b) > float(low_a @ high)


def test_sentence_embeddings_keep_paraphrases_close():
    enc = SentenceEncoder()
    v = enc(["the beeping", "short electronic beeps", "a person talking over music"])
    assert v.shape == (3, 384)
    assert torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.1
    assert torch.equal(enc(["the beeping"])[0], v[0])  # cached


def test_batched_dvectors_equal_one_at_a_time(speaker):
    waves = [_voice(100, 1.2), _voice(200, 3.1), _voice(150, 2.0)]
    batched = speaker.embed_batch(waves)
    assert batched.shape == (3, 256)
    for w, b in zip(waves, batched, strict=True):
        assert torch.allclose(speaker(w), b, atol=1e-5)
