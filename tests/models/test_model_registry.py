"""build_model registry and parameter counting."""

import pytest
import torch

from speechkit.models import MODELS, OWSM_V31_PRESETS, build_model, count_parameters
from speechkit.models.s2t import S2TConfig, S2TModel


def test_build_model_and_count():
    cfg = S2TConfig(vocab_size=11, d_model=16, n_heads=2, encoder_layers=1, encoder_ffn=8,
                    cgmlp_units=8, decoder_layers=1, decoder_ffn=8, n_mels=8)  # fmt: skip
    model = build_model(cfg)
    assert isinstance(model, S2TModel) and MODELS["s2t"] is S2TModel
    n = count_parameters(model)
    assert n == sum(p.numel() for p in model.parameters()) == model.num_parameters()
    # the output layer is tied to the embedding: one vocab x d_model table, not two
    assert model.decoder.embed.weight.numel() == 11 * 16
    for p in model.ctc_head.parameters():
        p.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == n - 11 * 16 - 11


def test_unknown_model_name():
    with pytest.raises(KeyError, match="s2t"):
        build_model(S2TConfig(vocab_size=5), name="rnnt")


# Published OWSM v3.1 sizes in millions (ESPnet model cards), vocabulary 50000.
@pytest.mark.parametrize("name, published", [("base", 101), ("small", 367), ("medium", 1020)])
def test_owsm_presets_are_near_published_sizes(name, published):
    with torch.device("meta"):  # shapes only, no memory
        model = build_model(S2TConfig(vocab_size=50000, **OWSM_V31_PRESETS[name]))
    assert abs(count_parameters(model) / 1e6 - published) / published < 0.05


def test_untied_output_layer_adds_one_vocab_projection():
    kw = {"vocab_size": 11, "d_model": 16, "n_heads": 2, "encoder_layers": 1, "encoder_ffn": 8,
          "cgmlp_units": 8, "decoder_layers": 1, "decoder_ffn": 8, "n_mels": 8}  # fmt: skip
    tied = count_parameters(build_model(S2TConfig(**kw)))
    untied = count_parameters(build_model(S2TConfig(**kw, tie_embeddings=False)))
    assert untied - tied == 11 * 16 + 11
