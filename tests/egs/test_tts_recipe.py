"""End to end: every stage of egs/phrasebook/tts1/run.sh on a tiny corpus with a tiny acoustic
model, on CPU: corpus -> phonemes and vocabulary -> FastSpeech 2 -> (the vocoder stage is
left to tests/tasks/test_vocoder_task.py) -> Griffin-Lim synthesis -> MCD/F0 scores and the picture. Whisper scoring
is left out (--whisper ""): the zoo download needs a network. The figures are RESULTS.md's
business; this checks that the stages fit together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lhotse import CutSet

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "phrasebook" / "tts1"
AM = (
    "model.d_model=32 model.encoder_layers=1 model.decoder_layers=1 model.ffn_channels=48 "
    "model.predictor_channels=32 model.aligner_channels=16 data.batch_size=4 "
    "trainer.max_steps=3 trainer.max_minutes=0 trainer.average_best=1 trainer.valid_every_steps=0"
)


def test_every_stage_produces_its_output(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--corpus", str(tmp_path / "corpus"),
           "--data", str(tmp_path / "tts"), "--exp", str(tmp_path / "exp"),
           "--png", str(tmp_path / "mels.png"), "--hours", "0.02", "--piper", "off",
           "--min_snr_db", "0", "--valid", "4", "--limit", "2", "--whisper", "",
           "--am_args", f"--set {AM}"]  # fmt: skip
    # Stage 4 (the vocoder) has its own tests; synthesis uses Griffin-Lim either way.
    for stages in (["--stage", "1", "--stop_stage", "3"], ["--stage", "5", "--stop_stage", "6"]):
        proc = subprocess.run(cmd + stages, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    vocab = json.loads((tmp_path / "tts" / "vocab.json").read_text())
    assert set(vocab["languages"]) == {"eng", "deu", "spa", "fra"}
    train = CutSet.from_file(tmp_path / "tts" / "cuts_train.jsonl.gz")
    assert all(c.supervisions[0].custom["phonemes"] for c in train)
    assert (tmp_path / "exp" / "fs2" / "model_avg.pt").is_file()
    for part in ("synth_valid", "synth_test"):
        scores = json.loads((tmp_path / "exp" / "fs2" / part / "scores.json").read_text())
        assert scores["utterances"] > 0 and scores["mcd_db_all"] > 0
        assert (
            len(list((tmp_path / "exp" / "fs2" / part / "wav").glob("*.wav")))
            == scores["utterances"]
        )
    assert (tmp_path / "mels.png").read_bytes()[:4] == b"\x89PNG"
