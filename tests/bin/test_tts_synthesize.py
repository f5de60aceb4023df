"""speechkit tts-synthesize with a tiny random FastSpeech 2: who says each cut (its own voice, else
the training voices of its language in turn), the per-language limit, what the synthesis
directory holds, skipped texts, a trained vocoder, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch
from tts_synth_fakes import tiny_acoustic_model, write_cuts

from speechkit.bin import tts_synthesize
from speechkit.models.vocoder import Vocoder, VocoderConfig
from speechkit.tts.mel import TTSMelConfig

SEEN = ["Where is the museum?", "The train leaves at eight o'clock.", "Good morning."]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tts checkpoint knowing two English voices."""
    return tiny_acoustic_model(tmp_path_factory.mktemp("am") / "model_avg.pt", SEEN)


CUTS = [
    ("c1", SEEN[0], "eng-a", "eng"),  # a training voice: its own
    ("c2", SEEN[1], "eng-x", "eng"),  # unseen voices: eng-b, eng-a, ... in turn
    ("c3", SEEN[2], "eng-y", "eng"),
    ("c4", "Zyxqj kwortz!", "eng-z", "eng"),  # sounds the model never had: skipped
]


def test_each_cut_is_said_by_a_voice_the_model_knows(model, tmp_path, capsys):
    out = tmp_path / "synth"
    args = ["--model", str(model), "--cuts", write_cuts(tmp_path, CUTS), "--out", str(out)]
    assert tts_synthesize.main([*args, "--gl-iters", "2"]) == 0
    rows = [json.loads(x) for x in (out / "synth.jsonl").open()]
    assert [(r["id"], r["syn_speaker"]) for r in rows] == [
        ("c1", "eng-a"), ("c2", "eng-b"), ("c3", "eng-a")
    ]  # fmt: skip
    assert rows[1]["ref_speaker"] == "eng-x" and rows[1]["reference"] == str(tmp_path / "c2.wav")
    assert json.loads((out / "mel.json").read_text()) == vars(TTSMelConfig())
    for r in rows:
        mel = torch.load(out / "mel" / f"{r['id']}.pt")
        assert mel["mel"].shape[0] == 80 and mel["pitch"].shape == (mel["mel"].shape[1],)
        wav = sf.info(out / "wav" / f"{r['id']}.wav")
        assert wav.samplerate == 16000 and r["seconds"] == round(wav.frames / 16000, 3) > 0
    speed = json.loads((out / "speed.json").read_text())
    assert speed["utterances"] == 3 and speed["vocoder"] == "griffin-lim (2 iterations)"
    assert speed["rtf_acoustic"] > 0 and speed["rtf_griffin_lim"] > 0
    assert len(speed["skipped"]) == 1 and speed["skipped"][0].startswith("c4: phonemes")
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == speed
    # --limit: at most N cuts of each language; --vocoder griffin-lim names the default
    assert tts_synthesize.main([*args, "--gl-iters", "1", "--limit", "2",
                                "--vocoder", "griffin-lim"]) == 0  # fmt: skip
    assert json.loads((out / "speed.json").read_text())["vocoder"] == "griffin-lim (1 iterations)"
    assert [json.loads(x)["id"] for x in (out / "synth.jsonl").open()] == ["c1", "c2"]


def test_a_trained_vocoder_makes_the_waves(model, tmp_path):
    voc = tmp_path / "voc.pt"
    vocoder = Vocoder(VocoderConfig(dim=16, layers=1))
    cfg = {"task": "vocoder", "model": vars(vocoder.cfg), "mel": vars(TTSMelConfig())}
    state = {f"generator.{k}": v for k, v in vocoder.state_dict().items()}
    torch.save({"config": cfg, "model": state}, voc)
    out = tmp_path / "synth"
    cuts = write_cuts(tmp_path, CUTS[:1])
    args = ["--model", str(model), "--cuts", cuts, "--out", str(out), "--vocoder", str(voc)]
    assert tts_synthesize.main(args) == 0
    speed = json.loads((out / "speed.json").read_text())
    assert speed["vocoder"] == str(voc) and "rtf_vocoder" in speed and speed["utterances"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--model": "missing.pt"}, "--model missing.pt: no such file"),
        ({"--cuts": "missing.jsonl.gz"}, "cut manifest not found: missing.jsonl.gz"),
        ({"--threads": "0"}, "--threads: must be at least 1, got 0"),
        ({"--limit": "-1"}, "--limit: must be at least 0, got -1"),
        ({"--languages": "deu"}, "no cut to synthesise"),
        ({"--vocoder": "novoc"}, "no vocoder at novoc"),
        ({"cuts": [("d1", "Guten Morgen.", "deu-x", "deu")]}, "no voice (speaker id "),
        ({"cuts": [CUTS[3]]}, "nothing synthesised, every text was skipped: c4: phonemes"),
    ],
)
def test_bad_input_is_a_clear_error(model, tmp_path, capsys, change, message):
    change = dict(change)  # (the parameter is shared between runs)
    opts = {"--model": str(model), "--cuts": write_cuts(tmp_path, change.pop("cuts", CUTS[:1]))}
    opts |= {"--out": str(tmp_path / "synth"), "--gl-iters": "1", **change}
    with pytest.raises(SystemExit) as e:
        tts_synthesize.main([x for kv in opts.items() for x in kv])
    assert message in (str(e.value.code) + capsys.readouterr().err)
