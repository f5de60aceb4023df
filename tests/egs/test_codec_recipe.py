"""End to end: every stage of egs/phrasebook/codec1/run.sh (after the apt-get set-up) on a tiny
corpus with tiny models, on CPU: corpus -> teacher -> codec + ablation -> packed codecs -> coded
test sets -> codes-to-text S2T models -> benchmark sections and spectrograms in RESULTS.md.
The figures are RESULTS.md's business; this checks that the stages fit together."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lhotse import CutSet

from speechkit import codec as codec_api

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "phrasebook" / "codec1"
TEACHER = (
    "model.d_model=32 model.n_heads=2 model.encoder_layers=1 model.encoder_ffn=64 "
    "model.cgmlp_units=64 model.decoder_layers=1 model.decoder_ffn=64 "
    "trainer.max_steps=2 trainer.average_best=1 data.num_workers=0"
)
CODEC = (
    "model.spectral.dim=16 model.spectral.enc_layers=1 model.spectral.dec_layers=1 "
    "model.rvq.dim=16 model.rvq.kmeans_iters=2 "
    "disc.channels=4 trainer.max_steps=2 disc_start=1 data.batch_size=4"
)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codec_recipe")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = [
        "bash",
        str(RECIPE / "run.sh"),
        "--data",
        str(tmp / "data"),
        "--exp",
        str(tmp / "exp"),
        "--results",
        str(tmp / "RESULTS.md"),
        "--png",
        str(tmp / "spec.png"),
        "--hours",
        "0.05",
        "--limit",
        "2",
        "--whisper",
        "",
        "--teacher_args",
        f"--set {TEACHER}",
        "--train_args",
        f"--set {CODEC}",
        "--codes_args",
        f"--set {TEACHER}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp


def test_every_stage_produces_its_output(recipe_run):
    tmp = recipe_run
    exp = tmp / "exp"
    assert (exp / "s2t_teacher" / "model_avg.pt").is_file()
    for variant in ("distill", "nodistill"):
        codec = codec_api.load(exp / f"codec_{variant}" / "packed")
        assert codec.cfg.backbone == "spectral" and codec.cfg.spectral.dim == 16
        assert (exp / f"s2t_codes_{variant}" / "model_avg.pt").is_file()
    coded = CutSet.from_file(exp / "codec_distill" / "codes_test_seen" / "cuts.jsonl.gz")
    assert coded[0].load_custom("codec_codes").shape[0] == 12  # 6 kbps = 12 codebooks
    resynth = CutSet.from_file(exp / "codec_distill" / "resynth_test_novel" / "cuts.jsonl.gz")
    assert len(resynth) > 0
    results = (tmp / "RESULTS.md").read_text()
    for title in (
        "Codec (distilled first codebook) vs Opus and Codec2",
        "Ablation: the same codec trained without distillation",
        "Distillation ablation: S2T on the first codebook",
    ):
        assert f"## {title}" in results
    assert "| speechkit codec 1.5 kbps |" in results and "WER codes_distill %" in results
    assert (tmp / "spec.png").read_bytes()[:4] == b"\x89PNG"
