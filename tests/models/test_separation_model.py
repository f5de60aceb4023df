"""The query-conditioned separator: shapes, the query steers the output, frame-local context
(what chunked processing relies on), and its config checks."""

from __future__ import annotations

import pytest
import torch

from speechkit.config import ConfigError
from speechkit.models.separation import Separator, SeparatorConfig


def _small(**kw) -> Separator:
    torch.manual_seed(0)
    model = Separator(SeparatorConfig(channels=16, hidden=24, query_dim=8, dilations=[1, 2],
                                      stacks=1, **kw))  # fmt: skip
    for block in model.blocks:  # FiLM starts at identity; give the query an effect
        torch.nn.init.normal_(block.film.weight, std=0.5)
    return model.eval()


def _query(b: int, kind: int = 0, class_id: int = 0):
    return (torch.full((b,), kind), torch.full((b,), class_id), torch.randn(b, 384),
            torch.randn(b, 256))  # fmt: skip


@pytest.mark.parametrize("mask", ["complex", "magnitude"])
def test_output_has_the_input_shape_and_depends_on_the_query(mask):
    model = _small(mask=mask)
    mix = torch.randn(2, 8001)
    with torch.no_grad():
        speech = model(mix, *_query(2, 0, 0))
        music = model(mix, *_query(2, 0, 4))
        text = model(mix, *_query(2, 1))
    assert speech.shape == mix.shape and torch.isfinite(speech).all()
    assert (speech - music).abs().max() > 1e-3 and (speech - text).abs().max() > 1e-3


def test_rows_are_independent_and_kinds_select_their_inputs():
    model = _small()
    mix = torch.randn(3, 4000)
    kind, cls, text, spk = _query(3)
    kind = torch.tensor([0, 1, 2])
    with torch.no_grad():
        both = model(mix, kind, cls, text, spk)
        alone = model(mix[1:2], kind[1:2], cls[1:2], text[1:2], spk[1:2])
        # a class row ignores the text and speaker inputs
        other = model(mix[:1], kind[:1], cls[:1], torch.randn(1, 384), torch.randn(1, 256))
    torch.testing.assert_close(both[1:2], alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both[:1], other, atol=1e-5, rtol=1e-4)


def test_context_is_finite_so_far_input_does_not_change_an_output_sample():
    model = _small()
    ctx = int(model.cfg.receptive_field_s * 16000)
    mix = torch.randn(1, 6 * ctx)
    changed = mix.clone()
    changed[0, 4 * ctx :] += torch.randn(2 * ctx)  # only beyond the context of sample 2*ctx
    with torch.no_grad():
        a, b = model(mix, *_query(1)), model(changed, *_query(1))
    assert (a[0, : 3 * ctx - 600] - b[0, : 3 * ctx - 600]).abs().max() < 1e-5
    assert (a[0, 4 * ctx :] - b[0, 4 * ctx :]).abs().max() > 1e-3


def test_unknown_class_and_bad_configs_are_clear_errors():
    model = _small()
    assert model.class_index("music") == 4
    with pytest.raises(ValueError, match="unknown query class 'sirens'.*speech"):
        model.class_index("sirens")
    with pytest.raises(ConfigError, match="kernel must be odd"):
        SeparatorConfig(kernel=4)
    with pytest.raises(ConfigError, match="distinct"):
        SeparatorConfig(class_names=["speech", "speech"])
    with pytest.raises(ConfigError, match="n_fft"):
        SeparatorConfig(n_fft=100, hop=128)


def test_one_training_step_reduces_the_loss_on_a_fixed_batch():
    from speechkit.tasks.separation import neg_si_sdr

    model = _small().train()
    torch.manual_seed(1)
    t = torch.arange(8000) / 16000
    speech = 0.3 * torch.sin(2 * torch.pi * 220 * t)[None].repeat(2, 1)
    mix = speech + 0.3 * torch.randn(2, 8000)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(15):
        loss = neg_si_sdr(model(mix, *_query(2)), speech, speech, torch.zeros(2, dtype=torch.bool))
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        losses.append(loss.mean().item())
    assert losses[-1] < losses[0] - 3.0  # dB
