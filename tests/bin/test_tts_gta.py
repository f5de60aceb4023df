"""speechkit tts-gta with a tiny random FastSpeech 2: one teacher-forced mel per usable cut, with
the recording's frames, stored with the cut; cuts the model cannot take are counted, not fatal."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch
from lhotse import load_manifest
from tts_synth_fakes import tiny_acoustic_model, write_cuts

from speechkit.bin import tts_gta
from speechkit.tts.acoustic import AcousticModel
from speechkit.tts.mel import TTSMelConfig, num_frames

TEXTS = ["Where is the museum?", "Good morning."]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_acoustic_model(tmp_path_factory.mktemp("am") / "model_avg.pt", TEXTS)


def test_each_usable_cut_gets_a_mel_with_its_recordings_frames(model, tmp_path, capsys):
    cuts = write_cuts(
        tmp_path,
        [("a", TEXTS[0], "eng-a", "eng"), ("b", TEXTS[1], "eng-b", "eng"),
         ("x", TEXTS[1], "eng-x", "eng"), ("g", TEXTS[1], "eng-a", "deu")],
        seconds=0.8,
    )  # fmt: skip
    out = tmp_path / "gta"
    assert tts_gta.main(["--model", str(model), "--cuts", cuts, "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report == {
        "cuts": 4, "written": 2, "skipped": {"unknown speaker": 1, "unknown language": 1}
    }  # fmt: skip
    assert json.loads((out / "report.json").read_text()) == report
    done = load_manifest(out / "cuts.jsonl.gz")
    assert [c.id for c in done] == ["a", "b"]
    am = AcousticModel.load(model)
    for cut in done:
        mel = cut.custom[tts_gta.GTA_FIELD].load()  # (frames, bands), all that was stored
        samples = sf.info(cut.recording.sources[0].source).frames
        assert mel.shape == (num_frames(samples, TTSMelConfig()), 80)
        # lhotse's view of the cut's span: whole frames of its duration
        assert cut.load_custom(tts_gta.GTA_FIELD).shape[0] in (mel.shape[0] - 1, mel.shape[0])
        # the model's own output for the cut, as in training but without dropout: the random
        # model's mel depends on its speaker, so the two cuts differ
        assert torch.isfinite(torch.from_numpy(mel)).all()
        assert not am.model.training
    a, b = (c.load_custom(tts_gta.GTA_FIELD) for c in done)
    assert a.shape != b.shape or abs(a - b).max() > 0


def test_nothing_usable_is_an_error(model, tmp_path):
    cuts = write_cuts(tmp_path, [("x", TEXTS[0], "eng-x", "eng")])
    with pytest.raises(SystemExit, match="unknown speaker"):
        tts_gta.main(["--model", str(model), "--cuts", cuts, "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        tts_gta.main(["--model", str(tmp_path / "none.pt"), "--cuts", cuts, "--out", "o"])
