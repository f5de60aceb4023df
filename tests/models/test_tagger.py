"""The event tagger: output shapes and masks, padding does not change a clip's posteriors,
events read back from clip posteriors, and it learns clip labels."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.models.tagger import TAGS, Tagger, TaggerConfig, event_of


def _small() -> Tagger:
    torch.manual_seed(0)
    return Tagger(TaggerConfig(n_mels=32, channels=[4, 8], dim=16, context_layers=1))


def test_shapes_and_frame_mask():
    model = _small().eval()
    wave = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 8000])
    out = model(wave, lengths)
    t = out["frame_probs"].shape[1]
    assert out["frame_probs"].shape == (2, t, len(TAGS)) and t == 50
    assert out["clip_probs"].shape == (2, 5) and out["embedding"].shape == (2, 16)
    assert out["frame_mask"].sum(1).tolist() == [50, 25]


def test_padding_leaves_a_clips_posteriors_alone():
    model = _small().eval()
    clip = torch.randn(1, 8000)
    alone = model(clip, torch.tensor([8000]))["clip_probs"]
    padded = model(torch.nn.functional.pad(clip, (0, 8000)), torch.tensor([8000]))["clip_probs"]
    torch.testing.assert_close(alone, padded, atol=0.02, rtol=0)  # conv edge frames only


def test_event_of_and_config_check():
    probs = torch.tensor([[0.99, 0.1, 0.2, 0.05, 0.9], [0.99, 0.2, 0.3, 0.4, 0.1]])
    assert event_of(probs) == ["music", "clean"]
    with pytest.raises(ConfigError, match="divisible"):
        TaggerConfig(n_mels=30, channels=[4, 8])


def test_learns_clip_labels_of_tones_against_noise():
    model = _small()
    t = torch.arange(8000) / 16000
    tones = 0.3 * torch.sin(2 * torch.pi * 1000 * t)[None].repeat(4, 1)
    noise = 0.3 * torch.randn(4, 8000)
    wave = torch.cat([tones, noise])
    labels = torch.zeros(8, 5)
    labels[:4, TAGS.index("beeps")] = 1
    labels[4:, TAGS.index("noise")] = 1
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(30):
        out = model(wave, torch.full((8,), 8000))
        loss = torch.nn.functional.binary_cross_entropy(out["clip_probs"], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (
        event_of(model(wave, torch.full((8,), 8000))["clip_probs"]) == ["beeps"] * 4 + ["noise"] * 4
    )
