"""speechkit.synthesize and ``speechkit synthesize``: a tiny random acoustic model and vocoder
(the plumbing and the error handling, not the sound)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment
from torch import nn

from speechkit.bin.synthesize import main as synth_main
from speechkit.models.vocoder import Vocoder, VocoderConfig
from speechkit.synthesize import (
    TTS,
    SynthesisError,
    items_from_cuts,
    items_from_text_file,
    synthesize_corpus,
)
from speechkit.tts.mel import TTSMelConfig
from speechkit.tts.text import PhonemeVocab, TextError, phonemize

FRAMES_PER_PHONEME = 3


class TinyAcoustic(nn.Module):
    """The acoustic-model interface of ``speechkit.tts.acoustic.AcousticModel``: each phoneme ->
    3 frames of a random linear map of its embedding. Its vocabulary is the phonemes of ``seen``
    texts; ``calls`` counts syntheses."""

    def __init__(self, seen: list[str]):
        super().__init__()
        self.speakers, self.languages = ["spk-a", "spk-b"], ["eng"]
        self.mel = TTSMelConfig()
        self.vocab = PhonemeVocab.build(phonemize(t, "eng") for t in seen)
        self.embed = nn.Embedding(len(self.vocab), 80)
        self.calls = 0

    def __call__(self, text, speaker, language):
        self.calls += 1
        ids = torch.tensor(self.vocab.encode(phonemize(text, language)))
        mel = self.embed(ids).t() - 6.0  # (80, N)
        return SimpleNamespace(mel=mel.repeat_interleave(FRAMES_PER_PHONEME, dim=1))


SEEN = ["Where is the museum?", "The train leaves at eight o'clock.", "Good morning, how are you?"]


@pytest.fixture(scope="module")
def tts():
    # one thread: tiny ops on a shared machine spend their time waiting for a second one
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield TTS(TinyAcoustic(SEEN), Vocoder(VocoderConfig(dim=16, layers=1)))
    torch.set_num_threads(threads)


def test_a_sentence_gives_one_frame_of_samples_per_mel_frame(tts):
    wave, sr = tts.synthesize("Where is the museum?", "spk-a", "eng")
    n = len(phonemize("Where is the museum?", "eng"))
    assert sr == 16000 and wave.dtype == np.float32
    assert wave.shape == (n * FRAMES_PER_PHONEME * 256,)
    assert np.abs(wave).max() <= 1.0


def test_long_text_is_synthesised_in_chunks(tts):
    text = " ".join(["Where is the museum?"] * 300)  # 1,200 words
    before = tts.acoustic.calls
    wave, sr = tts.synthesize(text, "spk-b", "eng")
    assert tts.acoustic.calls - before == 300
    one, _ = tts.synthesize("Where is the museum?", "spk-b", "eng")
    pause = round(tts.pause_seconds * sr)
    assert len(wave) == 300 * len(one) + 299 * pause


@pytest.mark.parametrize(
    ("text", "speaker", "language", "message"),
    [
        ("", "spk-a", "eng", "empty text"),
        ("   \n", "spk-a", "eng", "empty text"),
        ("?!", "spk-a", "eng", "no letters or digits"),
        ("Where is the museum?", "nobody", "eng", "unknown speaker 'nobody'.*spk-a"),
        ("Where is the museum?", "spk-a", "xxx", r"unknown language 'xxx'.*\['eng'\]"),
        ("Where is the 博物馆?", "spk-a", "eng", "unsupported characters"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_synthesis(tts, text, speaker, language, message):
    before = tts.acoustic.calls
    # a good sentence first: a bad chunk anywhere fails before any chunk is synthesised
    with pytest.raises(SynthesisError, match=message):
        tts.synthesize(f"Where is the museum? {text}" if text.strip() else text, speaker, language)
    assert tts.acoustic.calls == before
    assert issubclass(SynthesisError, ValueError) and not issubclass(TextError, SynthesisError)


def test_phonemes_the_model_never_saw_are_a_clear_error(tts):
    with pytest.raises(SynthesisError, match="not in the model's vocabulary"):
        tts.synthesize("Zyxqj kwortz!", "spk-a", "eng")


def test_load_tts_speaks_with_a_fastspeech2_checkpoint_and_a_vocoder_checkpoint(tmp_path):
    from speechkit.models.tts import FastSpeech2, FastSpeech2Config
    from speechkit.synthesize import load_tts

    torch.manual_seed(0)
    vocab = PhonemeVocab.build(phonemize(t, "eng") for t in SEEN)
    cfg = FastSpeech2Config(
        phonemes=vocab.phonemes, speakers=["spk-a"], languages=["eng"], d_model=16, n_heads=2,
        encoder_layers=1, decoder_layers=1, ffn_channels=32, predictor_channels=16,
        aligner_channels=16,
    )  # fmt: skip
    config = {"task": "tts", "model": dataclasses.asdict(cfg), "mel": vars(TTSMelConfig())}
    (tmp_path / "am").mkdir()
    torch.save({"config": config, "model": FastSpeech2(cfg).state_dict()},
               tmp_path / "am" / "model_avg.pt")  # fmt: skip
    _pack(Vocoder(VocoderConfig(dim=16, layers=1)), tmp_path / "voc")
    tts = load_tts(tmp_path / "am", tmp_path / "voc")
    wave, sr = tts.synthesize("Where is the museum? Good morning.", "spk-a", "eng")
    assert sr == 16000 and wave.ndim == 1 and len(wave) > 2 * 256
    assert len(wave) % 256 == round(0.15 * sr) % 256  # whole frames, plus one pause
    with pytest.raises(SynthesisError, match="unknown speaker 'spk-b'"):
        tts.synthesize("Where is the museum?", "spk-b", "eng")


def test_mismatched_mel_formats_are_refused():
    with pytest.raises(ValueError, match="disagree on the mel format"):
        TTS(TinyAcoustic(SEEN), Vocoder(VocoderConfig(dim=8, layers=1, n_mels=64)))
    with pytest.raises(TypeError, match="not an acoustic model"):
        TTS(nn.Linear(2, 2), Vocoder(VocoderConfig(dim=8, layers=1)))


def test_corpus_skips_and_counts_bad_items(tts, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("Where is the museum?\n\nGood morning, how are you?\n🙂 smile\n")
    items = list(items_from_text_file(lines, "spk-a", "eng"))
    assert [i.id for i in items] == ["lines-000001", "lines-000003", "lines-000004"]
    sups = [SupervisionSegment("u1", "r1", 0, 1, text="Where is the museum?", speaker="spk-b",
                               language="eng"),
            SupervisionSegment("u2", "r2", 0, 1, text="Where is the museum?", speaker="stranger",
                               language="eng")]  # fmt: skip
    cuts = [
        Recording("r1", [], 16000, 16000, 1.0).to_cut(),
        Recording("r2", [], 16000, 16000, 1.0).to_cut(),
    ]
    for c, s in zip(cuts, sups):
        c.supervisions = [s]
    items += list(items_from_cuts(cuts))
    assert [i.speaker for i in items_from_cuts(cuts, ["x", "y"])] == ["x", "y"]
    assert list(items_from_cuts(cuts, language="deu")) == []
    summary = synthesize_corpus(tts, items, tmp_path / "corpus", "test")
    assert summary["synthesised"] == 3 and summary["failed"] == 2
    assert summary["reasons"] == {"SynthesisError": 2}
    out = CutSet.from_file(tmp_path / "corpus" / "cuts_test.jsonl.gz")
    assert sorted(c.supervisions[0].id for c in out) == ["lines-000001", "lines-000003", "tts-u1"]
    cut = next(c for c in out if c.id == "tts-u1")
    assert cut.supervisions[0].speaker == "spk-b" and cut.load_audio().shape[1] > 0
    failed = [json.loads(x) for x in open(tmp_path / "corpus" / "failed_test.jsonl")]
    assert {f["id"] for f in failed} == {"lines-000004", "tts-u2"}
    assert "unknown speaker 'stranger'" in next(f["error"] for f in failed if f["id"] == "tts-u2")


def _cli(tmp_path, monkeypatch, tts, *args):
    monkeypatch.setattr("speechkit.synthesize.load_acoustic", lambda path, device: tts.acoustic)
    voc_dir = tmp_path / "voc"
    if not voc_dir.exists():
        _pack(tts.vocoder, voc_dir)
    return synth_main(["--model", "unused", "--vocoder", str(voc_dir), "--threads", "1", *args])


def _pack(vocoder, out):
    """A packed vocoder directory from a model (as pack_vocoder writes from a checkpoint)."""
    from speechkit.synthesize import pack_vocoder

    ckpt = out.parent / "voc.pt"
    cfg = {"task": "vocoder", "model": vars(vocoder.cfg), "mel": vars(TTSMelConfig())}
    state = {f"generator.{k}": v for k, v in vocoder.state_dict().items()}
    torch.save({"config": cfg, "model": state}, ckpt)
    pack_vocoder(ckpt, out)


def test_cli_writes_a_wav(tts, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.wav"
    rc = _cli(tmp_path, monkeypatch, tts, "--speaker", "spk-a", "--language", "eng",
              "Where is the museum?", "-o", str(out))  # fmt: skip
    assert rc == 0
    wave, sr = sf.read(out)
    expected, _ = tts.synthesize("Where is the museum?", "spk-a", "eng")
    assert sr == 16000 and len(wave) == len(expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speaker", "nobody", "--language", "eng", "Hello there.", "-o", "x.wav"],
         "unknown speaker 'nobody'"),
        (["--speaker", "spk-a", "--language", "klingon", "Hello.", "-o", "x.wav"],
         "unknown language 'klingon'"),
        (["--speaker", "spk-a", "--language", "eng", "", "-o", "x.wav"], "empty text"),
        (["--speaker", "spk-a", "--language", "eng", "Where is the 博物馆?", "-o", "x.wav"],
         "unsupported characters"),
    ],
)  # fmt: skip
def test_cli_bad_inputs_exit_2_with_the_reason(tts, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert _cli(tmp_path, monkeypatch, tts, *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_cli_usage_errors(tts, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _cli(tmp_path, monkeypatch, tts, "--speaker", "spk-a", "--language", "eng", "Hi.")
    assert "-o/--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(tmp_path, monkeypatch, tts, "--text-file", "a.txt", "--out-dir", "d")
    assert "--speaker and --language" in capsys.readouterr().err
    missing = synth_main(["--model", "m", "--vocoder", str(tmp_path / "none"), "--list"])
    assert missing == 2 and "no vocoder at" in capsys.readouterr().err


def test_griffin_lim_stands_in_for_a_trained_vocoder(tts):
    from speechkit.synthesize import GriffinLimVocoder

    gl = TTS(tts.acoustic, GriffinLimVocoder(tts.acoustic.mel, n_iter=4))
    wave, sr = gl.synthesize("Where is the museum?", "spk-a", "eng")
    frames = len(phonemize("Where is the museum?", "eng")) * FRAMES_PER_PHONEME
    assert sr == 16000 and wave.shape == ((frames - 1) * 256,) and np.isfinite(wave).all()
    assert np.abs(wave).max() > 0
    with pytest.raises(ValueError, match="at least 1 iteration"):
        GriffinLimVocoder(TTSMelConfig(), n_iter=0)


def _text_only(sup_id, text, language, translations):
    return SupervisionSegment(sup_id, sup_id, 0.0, 0.0, text=text, language=language,
                              custom={"translations": translations})  # fmt: skip


def test_items_from_text_only_supervisions_by_the_voices_of_their_language():
    from speechkit.synthesize import voices_by_language

    voices = voices_by_language(["eng-a", "deu-a", "eng-b", "eng-c"])
    assert voices == {"eng": ["eng-a", "eng-b", "eng-c"], "deu": ["deu-a"]}
    sups = [_text_only(f"s{i}", "Hello.", lang, {"deu": "Hallo."})
            for i, lang in enumerate(["eng", "deu", "eng", "fra", "eng", "eng", "deu"])]  # fmt: skip
    items = list(items_from_cuts(sups, voices=voices))
    assert [i.speaker for i in items] == ["eng-a", "deu-a", "eng-b", "", "eng-c", "eng-a", "deu-a"]
    assert items[0].custom == {"translations": {"deu": "Hallo."}} and items[0].id == "tts-s0"
    assert [i.id for i in items_from_cuts(sups, voices=voices, language="deu")] == [
        "tts-s1",
        "tts-s6",
    ]


def test_cli_text_only_manifest_with_griffin_lim_keeps_translations(tts, tmp_path, monkeypatch):
    from lhotse import SupervisionSet

    acoustic = TinyAcoustic(SEEN)
    acoustic.speakers, acoustic.languages = ["eng-x", "eng-y"], ["eng", "deu"]
    monkeypatch.setattr("speechkit.synthesize.load_acoustic", lambda path, device: acoustic)
    sups = [_text_only("a", "Where is the museum?", "eng", {"deu": "Wo ist das Museum?"}),
            _text_only("b", "Good morning, how are you?", "eng", {"deu": "Guten Morgen."}),
            _text_only("c", "Guten Morgen.", "deu", {"eng": "Good morning."})]  # fmt: skip
    SupervisionSet.from_segments(sups).to_file(tmp_path / "texts.jsonl.gz")
    rc = synth_main(["--model", "m", "--vocoder", "griffin-lim", "--cuts",
                     str(tmp_path / "texts.jsonl.gz"), "--speaker", "auto", "--out-dir",
                     str(tmp_path / "c"), "--name", "novel", "--threads", "1"])  # fmt: skip
    assert rc == 0
    cuts = {c.id: c for c in CutSet.from_file(tmp_path / "c" / "cuts_novel.jsonl.gz")}
    assert sorted(cuts) == ["tts-a", "tts-b"]  # no German voice: "c" failed alone
    sup = cuts["tts-a"].supervisions[0]
    assert sup.speaker == "eng-x" and cuts["tts-b"].supervisions[0].speaker == "eng-y"
    assert sup.custom == {
        "translations": {"deu": "Wo ist das Museum?"},
        "synthetic": "speechkit-tts",
    }
    assert cuts["tts-a"].load_audio().shape[1] > 0
    failed = [json.loads(x) for x in open(tmp_path / "c" / "failed_novel.jsonl")]
    assert [f["id"] for f in failed] == ["tts-c"] and "unknown speaker ''" in failed[0]["error"]


def test_cli_refuses_to_pack_griffin_lim_and_non_text_manifests(tmp_path, capsys):
    with pytest.raises(SystemExit):
        synth_main(["--vocoder", "griffin-lim", "--pack", str(tmp_path / "p")])
    assert "no weights to pack" in capsys.readouterr().err
