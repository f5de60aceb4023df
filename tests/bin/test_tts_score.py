"""speechkit tts-score: MCD, F0 error and voicing against the reference recordings (all rows and
same-voice rows apart), the judge's WER on synthesis, recordings and their Griffin-Lim copies,
the RESULTS.md section, and clear errors for an incomplete synthesis directory. The judge is a
fake here; tests/egs/test_ljspeech_recipe.py runs the real whisper-tiny.en."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from context_cuts import voice
from tts_synth_fakes import MEL, Row, write_synth_dir

from speechkit.bin import tts_score
from speechkit.data.phrasebook.voices import PiperSpeaker, Speaker
from speechkit.data.tts import PITCH_REFERENCE_HZ

CENTS_300 = 2 ** (300 / 1200)


def test_a_wave_against_itself_scores_zero_and_a_pitch_shift_scores_its_cents():
    ref = voice(150.0, 1.0)
    same = tts_score.spectral_errors(ref, ref, MEL)
    assert (same["mcd"], same["f0_rmse_cents"], same["vuv_error"]) == (0.0, 0.0, 0.0)
    shifted = tts_score.spectral_errors(ref, voice(150.0 * CENTS_300, 1.0), MEL)
    mcd, f0_cents, vuv = shifted["mcd"], shifted["f0_rmse_cents"], shifted["vuv_error"]
    assert mcd > 0.1 and 270 < f0_cents < 330 and vuv < 0.1
    assert tts_score.cepstra(ref, MEL).shape == (13, 1 + len(ref) // MEL.hop_length)


def test_the_speaker_id_names_the_engine_voice():
    assert tts_score.engine_voice("eng-m3-p50-s155") == Speaker("eng", "m3", 50, 155)
    assert tts_score.engine_voice("eng-piper-joe-l1.10-p0.90") == PiperSpeaker("eng", 1.1, 0.9)


def test_scores_split_same_voice_rows_and_write_a_results_section(tmp_path, capsys):
    rows = [
        Row("a1", "where is the museum", "eng", "eng-m3-p50-s155", "eng-m3-p50-s155"),
        Row("a2", "good morning", "eng", "eng-m1-p60-s150", "eng-m1-p60-s150"),
        Row("b1", "guten morgen", "deu", "deu-f1-p65-s165", "deu-m2-p60-s165", 150, 225),
    ]
    speed = {"rtf_acoustic": 0.03, "rtf_griffin_lim": 0.06, "vocoder": "griffin-lim", "threads": 1}
    synth = write_synth_dir(tmp_path, rows, speed)
    # b1's acoustic model asked for a semitone above the recording; its vocoder made a fifth
    stored = torch.load(synth / "mel" / "b1.pt")
    stored["pitch"] = torch.full_like(
        stored["pitch"], float(np.log2(150 * 2 ** (1 / 12) / PITCH_REFERENCE_HZ))
    )
    torch.save(stored, synth / "mel" / "b1.pt")
    results = tmp_path / "RESULTS.md"
    args = ["--synth", str(synth), "--whisper", "", "--results-md", str(results)]
    assert tts_score.main(args) == 0
    scores = json.loads((synth / "scores.json").read_text())
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == scores
    assert scores["utterances"] == 3 and scores["same_speaker_utterances"] == 2
    assert "wer_synthesis" not in scores  # no judge
    # the same-voice rows are the recordings themselves; the other one is a fifth higher
    assert scores["mcd_db_same_speaker"] == 0.0 and scores["f0_rmse_cents_same_speaker"] == 0.0
    assert scores["mcd_db_all"] > 0 and scores["f0_rmse_cents_all"] > 150
    # harmonic tones: voiced nearly throughout, synthesis and recordings alike
    assert scores["voiced_fraction_synthesis_all"] > 0.8
    assert scores["voiced_fraction_reference_all"] > 0.8
    scored = {r["id"]: r for r in map(json.loads, (synth / "scored.jsonl").open())}
    assert scored["a1"]["mcd"] == 0.0 and 650 < scored["b1"]["f0_rmse_cents"] < 750
    assert 80 < scored["b1"]["f0_rmse_cents_predicted"] < 120
    assert scored["a1"]["f0_rmse_cents_predicted"] < 20  # asked for the recording's pitch
    assert scores["f0_rmse_cents_predicted_all"] == pytest.approx(
        np.mean([r["f0_rmse_cents_predicted"] for r in scored.values()]), abs=0.1
    )
    text = results.read_text()
    assert f"## {synth}" in text and "| same speaker | 2 | 0.0 | 0.0 |" in text
    assert "- vocoder: griffin-lim; real-time factor on 1 CPU thread(s)" in text
    assert f"python -m speechkit.bin.tts_score --synth {synth}" in text  # the default command


class FakeJudge:
    """``Transcriber.load(name)`` -> a judge that answers its calls in the order tts-score makes
    them: the synthesis, the recordings, their Griffin-Lim copies, then the engines' waves."""

    answers: list[list[str]] = []

    @classmethod
    def load(cls, name):
        assert name == "judge"
        return cls()

    def __call__(self, waves):
        texts = self.answers.pop(0)
        assert len(texts) == len(waves) and all(isinstance(w, np.ndarray) for w in waves)
        return [SimpleNamespace(text=t) for t in texts]


def test_the_judges_wer_on_synthesis_recordings_and_engines(tmp_path, monkeypatch):
    rows = [
        Row("a1", "where is the museum", "eng", "eng-m3-p50-s155", "eng-m3-p50-s155"),
        Row("a2", "the train is late", "eng", "ljspeech", "eng-m1-p60-s150"),
        Row("b1", "guten morgen", "deu", "deu-f1-p65-s165", "deu-f1-p65-s165"),
    ]
    synth = write_synth_dir(tmp_path, rows)
    FakeJudge.answers = [
        ["where is the muse", "the rain is late"],  # synthesis: 2 of 8 words wrong
        ["where is the museum", "the rain is late"],  # recordings: 1 of 8
        ["where is the museum", "the train is late"],  # through Griffin-Lim: none
        ["where is the museum", "the train is late"],  # espeak-ng itself (both rows)
    ]
    monkeypatch.setattr(tts_score, "Transcriber", FakeJudge)
    assert tts_score.main(["--synth", str(synth), "--whisper", "judge", "--engines"]) == 0
    scores = json.loads((synth / "scores.json").read_text())
    assert scores["english_utterances"] == 2  # German is not judged
    assert (scores["wer_synthesis"], scores["wer_reference"], scores["wer_ratio"]) == (
        25.0,
        12.5,
        2.0,
    )
    assert scores["wer_reference_griffin_lim"] == 0.0 and FakeJudge.answers == []
    espeak = scores["engines"]["espeak"]
    assert espeak["utterances"] == 2 and espeak["wer_engine"] == 0.0
    assert espeak["wer_speechkit_same_voices"] == 25.0 and espeak["rtf_engine"] > 0
    assert "piper" not in scores["engines"]


@pytest.mark.parametrize(
    ("damage", "extra", "message"),
    [
        ("no_dir", [], "no such directory"),
        ("no_jsonl", [], "no synth.jsonl"),
        ("empty_jsonl", [], "no synthesised utterance"),
        ("no_wav", [], "1 synthesised wav(s) missing, e.g. a1.wav"),
        ("", ["--title", "x"], "give --results-md too"),
    ],
)
def test_an_incomplete_synthesis_directory_is_named(tmp_path, capsys, damage, extra, message):
    synth = write_synth_dir(tmp_path, [Row("a1", "hello", "eng", "s", "s")])
    if damage == "no_dir":
        synth = tmp_path / "elsewhere"
    elif damage == "no_jsonl":
        (synth / "synth.jsonl").unlink()
    elif damage == "empty_jsonl":
        (synth / "synth.jsonl").write_text("")
    elif damage == "no_wav":
        (synth / "wav" / "a1.wav").unlink()
    with pytest.raises(SystemExit) as e:
        tts_score.main(["--synth", str(synth), "--whisper", "", *extra])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_more_judges_score_every_language_from_their_decodes(tmp_path, monkeypatch):
    rows = [
        Row("a1", "where is the museum", "eng", "eng-m3-p50-s155", "eng-m3-p50-s155"),
        Row("b1", "guten morgen", "deu", "deu-f1-p65-s165", "deu-f1-p65-s165"),
        Row("b2", "wo ist das museum", "deu", "deu-m2-p60-s165", "deu-f1-p65-s165"),
    ]
    synth = write_synth_dir(tmp_path, rows)
    answers = {  # (judge, kind) -> {cut id: hypothesis}
        ("whisper-base", "synthesis"): {"a1": "where is the muse", "b1": "guten morgen",
                                        "b2": "wo ist museum"},
        ("whisper-base", "reference"): {"a1": "where is the museum", "b1": "guten morgen",
                                        "b2": "wo ist das museum"},
        ("s2t_tiny", "synthesis"): {"a1": "", "b1": "gute morgen", "b2": "wo ist das museum"},
        ("s2t_tiny", "reference"): {"a1": "where is a museum", "b1": "guten morgen",
                                    "b2": "wo ist das museum"},
    }  # fmt: skip
    calls = []

    def fake_run(args):
        """What speechkit.bin.decode writes: OUT/asr_<lang>/hyps.jsonl from the cuts given."""
        from lhotse import CutSet

        label = tts_score.judge_label(args.model)
        kind = "synthesis" if "synthesis" in args.cuts else "reference"
        calls.append((label, kind, args.tasks, args.threads, args.ctc_weight))
        for cut in CutSet.from_file(args.cuts):
            sup = cut.supervisions[0]
            ref_audio = str(tmp_path / "refs" / f"{cut.id}.wav")
            assert (cut.recording.sources[0].source == ref_audio) == (kind == "reference")
            out = Path(args.out) / f"asr_{sup.language}"
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "hyps.jsonl", "a") as f:
                hyp = answers[(label, kind)][cut.id]
                f.write(json.dumps({"id": cut.id, "hyp": hyp, "ref": sup.text}) + "\n")
        return {}

    monkeypatch.setattr("speechkit.bin.decode.run", fake_run)
    # (whether a judge has a CTC head is read from the loaded model: test_ctc_weight_... below)
    monkeypatch.setattr(tts_score, "ctc_weight_of", lambda m, w: 0.0 if m == "whisper-base" else w)
    judges = ["whisper-base", str(tmp_path / "exp" / "s2t_tiny" / "model_avg.pt")]
    results = tmp_path / "RESULTS.md"
    args = ["--synth", str(synth), "--whisper", "", "--judges", *judges,
            "--no-speaker-similarity", "--results-md", str(results)]  # fmt: skip
    assert tts_score.main(args) == 0
    assert sorted(calls) == [("s2t_tiny", "reference", "asr", 1, 0.3),
                             ("s2t_tiny", "synthesis", "asr", 1, 0.3),
                             ("whisper-base", "reference", "asr", 1, 0.0),
                             ("whisper-base", "synthesis", "asr", 1, 0.0)]  # fmt: skip
    judged = json.loads((synth / "scores.json").read_text())["judges"]
    assert judged["whisper-base"]["eng"] == {
        "utterances": 1, "wer_synthesis": 25.0, "wer_reference": 0.0, "ratio": None
    }  # fmt: skip
    assert judged["whisper-base"]["deu"]["wer_synthesis"] == round(100 / 6, 2)
    assert judged["s2t_tiny"]["all"] == {
        "utterances": 3, "wer_synthesis": 50.0, "wer_reference": 10.0, "ratio": 5.0
    }  # fmt: skip
    assert "speaker_similarity" not in json.loads((synth / "scores.json").read_text())
    text = results.read_text()
    assert "| judge | eng | deu | all |" in text
    assert "| s2t_tiny | 100.0 / 25.0 (4.0) | 16.67 / 0.0 (None) | 50.0 / 10.0 (5.0) |" in text


def test_two_judges_of_one_name_are_a_usage_error(tmp_path, capsys):
    synth = write_synth_dir(tmp_path, [Row("a1", "hello", "eng", "s", "s")])
    with pytest.raises(SystemExit):
        tts_score.main(["--synth", str(synth), "--whisper", "", "--judges",
                        "a/s2t/model_avg.pt", "b/s2t/model_avg.pt"])  # fmt: skip
    assert "two judges named alike" in capsys.readouterr().err


def test_speaker_similarity_of_own_other_and_recorded_voices(tmp_path):
    rows = [  # tones: a voice is its F0; a1 and a2 are one voice, b1 another, c1 too short
        Row("a1", "one", "eng", "eng-a", "eng-a", 120.0, 120.0, 1.5),
        Row("a2", "two", "eng", "eng-a", "eng-a", 120.0, 240.0, 1.5),
        Row("b1", "three", "eng", "eng-b", "eng-b", 240.0, 240.0, 1.5),
        Row("c1", "four", "eng", "eng-c", "eng-c", 200.0, 200.0, 0.5),
    ]
    synth = write_synth_dir(tmp_path, rows)
    sim = tts_score.speaker_similarity(
        [json.loads(x) for x in (synth / "synth.jsonl").read_text().splitlines()], synth
    )
    assert sim["skipped_short_or_silent"] == 1 and sim["same_speaker_utterances"] == 3
    # a1 and b1 are their references exactly (cosine 1); a2 is said in b's voice (F0 240)
    from speechkit.data.audio import load_audio
    from speechkit.models.query_encoders import SpeakerEncoder

    enc = SpeakerEncoder()
    e = {k: enc.embed_batch([load_audio(tmp_path / "refs" / f"{k}.wav")]).numpy()[0]
         for k in ("a1", "a2", "b1")}  # fmt: skip
    syn_a2 = enc.embed_batch([load_audio(synth / "wav" / "a2.wav")]).numpy()[0]
    assert sim["secs_same_speaker"] == pytest.approx((1 + syn_a2 @ e["a2"] + 1) / 3, abs=2e-3)
    other = [e["b1"] @ e["a1"], (syn_a2 @ e["b1"]), (e["b1"] @ e["a1"] + e["b1"] @ e["a2"]) / 2]
    assert sim["secs_other_speakers"] == pytest.approx(np.mean(other), abs=2e-3)
    assert sim["recordings_same_speaker_utterances"] == 2  # a1 and a2 have a twin; b1 has none
    assert sim["secs_recordings_same_speaker"] == pytest.approx(e["a1"] @ e["a2"], abs=2e-3)


def test_a_whisper_judge_decodes_without_ctc():
    assert tts_score.ctc_weight_of("whisper-tiny.en", 0.3) == 0.0
