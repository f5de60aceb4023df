"""speechkit.bench.testset: audio with references from a directory, a manifest, the phrasebook."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.bench import testset

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (tools/setup.sh)"
)


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def test_audio_dir_reads_any_rate_and_channel_count_in_reference_order(tmp_path):
    sf.write(tmp_path / "b.wav", _tone(1.0, 8000, channels=2), 8000)
    sf.write(tmp_path / "a.flac", _tone(0.5, 16000), 16000)
    (tmp_path / "text").write_text("b the second\na the first one\n\nc\n")
    with pytest.raises(FileNotFoundError, match="no audio for utterance 'c'"):
        testset.from_audio_dir(tmp_path, tmp_path / "text")
    s = testset.from_audio_dir(tmp_path, tmp_path / "text", language="eng", limit=2)
    assert (s.ids, s.refs, s.name, s.task) == (
        ["b", "a"], ["the second", "the first one"], "asr eng", "transcribe"
    )  # fmt: skip
    assert [w.shape for w in s.waves] == [(16000,), (8000,)]  # mono, 16 kHz
    assert all(w.dtype == np.float32 for w in s.waves)
    assert s.seconds == pytest.approx(1.5)
    np.testing.assert_allclose(s.waves[1], _tone(0.5, 16000), atol=1e-4)  # FLAC round trip


def test_reference_lists_must_be_well_formed(tmp_path):
    (tmp_path / "text").write_text("a one\na two\n")
    with pytest.raises(ValueError, match="'a' listed twice"):
        testset.read_text(tmp_path / "text")
    (tmp_path / "text").write_text("\n")
    with pytest.raises(ValueError, match="no references"):
        testset.read_text(tmp_path / "text")


def test_cuts_give_transcripts_or_english_translations_of_one_language(tmp_path):
    cuts = []
    for i, (lang, translations) in enumerate(
        [("deu", {"eng": "hello"}), ("eng", {"deu": "hallo"}), ("deu", {}), ("deu", None)]
    ):
        sf.write(tmp_path / f"{i}.wav", _tone(0.25 * (i + 1), 16000), 16000)
        cut = Recording.from_file(tmp_path / f"{i}.wav", recording_id=f"r{i}").to_cut()
        sup = SupervisionSegment(f"s{i}", f"r{i}", 0, cut.duration, text=f"text {i}", language=lang)
        sup.custom = None if translations is None else {"translations": translations}
        cut.supervisions = [sup]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    manifest = tmp_path / "cuts.jsonl.gz"
    asr = testset.from_cuts(manifest, "deu")
    assert asr.refs == ["text 0", "text 2", "text 3"] and asr.name == "asr deu"
    assert [len(w) for w in asr.waves] == [4000, 12000, 16000]
    assert testset.from_cuts(manifest, "deu", limit=1).refs == ["text 0"]
    st = testset.from_cuts(manifest, "deu", task="translate")
    assert (st.refs, st.name, st.task) == (["hello"], "st deu->eng", "translate")
    with pytest.raises(ValueError, match="no cut in language 'fra'"):
        testset.from_cuts(manifest, "fra")
    with pytest.raises(ValueError, match="'eng' translation"):
        testset.from_cuts(manifest, "eng", task="translate")


@needs_espeak
def test_phrasebook_speech_of_the_same_sentences_for_both_tasks():
    from speechkit.data.phrasebook.grammar import all_sentences

    asr = testset.phrasebook("deu", 2, seed=3)
    st = testset.phrasebook("deu", 2, task="translate", seed=3)
    by_deu = {s.texts["deu"]: s.texts["eng"] for s in all_sentences()}
    assert [by_deu[r] for r in asr.refs] == st.refs  # the same sentences, English references
    assert all(0.3 < len(w) / 16000 < 8 and np.abs(w).max() > 0.05 for w in asr.waves)


def test_benchmark_options_select_one_set_or_fail_clearly(tmp_path):
    import argparse

    p = argparse.ArgumentParser()
    testset.add_arguments(p, max_utts=1)
    args = p.parse_args(["--audio-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="go together"):
        testset.from_args(args)
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "b.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "text").write_text("a one\nb two\n")
    data = testset.from_args(p.parse_args(["--audio-dir", str(tmp_path), "--text",
                                           str(tmp_path / "text")]))  # fmt: skip
    assert data.ids == ["a"] and data.refs == ["one"]  # --max-utts 1 by default here
