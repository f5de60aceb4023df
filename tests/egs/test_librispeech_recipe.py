"""End to end: every stage of egs/librispeech/s2t1/run.sh on a miniature LibriSpeech, on CPU.

The fixture writes a few tone "utterances" where LibriSpeech keeps them (``LibriSpeech/<part>/
<speaker>/<chapter>/...flac`` and ``.trans.txt``); the recipe then prepares them with lhotse's
recipe (``--download false``), trains a tokenizer and a very small model for two steps, decodes,
scores into RESULTS.md and packs the model. This checks that the stages fit together, not the
figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "corpora"))
import corpus_fakes  # noqa: E402

from speechkit.pretrained import load_pretrained  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs" / "librispeech" / "s2t1"
PARTS = ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]
TINY_MODEL = " ".join(
    f"--set {kv}"
    for kv in [
        "model.d_model=32",
        "model.n_heads=2",
        "model.encoder_layers=1",
        "model.encoder_ffn=64",
        "model.cgmlp_units=64",
        "model.cgmlp_kernel=15",
        "model.merge_conv_kernel=15",
        "model.decoder_layers=1",
        "model.decoder_ffn=64",
        "model.subsampling_channels=16",
        "data.sampler.max_duration=4",
        "data.sampler.max_cut_duration=4",
        "data.sampler.num_buckets=2",
        "data.num_workers=0",
        "trainer.max_steps=2",
        "trainer.accum_grad=1",
        "trainer.average_best=2",
        "trainer.device=cpu",
    ]
)


def tiny_config(tmp: Path) -> Path:
    """The recipe's config with a tokenizer that a dozen transcripts can train."""
    cfg = yaml.safe_load((ROOT / "conf" / "s2t" / "librispeech_100h.yaml").read_text())
    cfg["tokenizer"] = {"vocab_size": 40, "model_type": "unigram"}
    path = tmp / "librispeech_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_recipe(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data_root", str(tmp / "corpus")]
    cmd += ["--data", str(tmp / "data"), "--exp", str(tmp / "exp"), "--nj", "1"]
    cmd += ["--results", str(tmp / "RESULTS.md"), "--beam", "2", "--config", str(tiny_config(tmp))]
    cmd += ["--train_args", TINY_MODEL, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("librispeech")
    corpus_fakes.write_librispeech(tmp / "corpus", PARTS)
    proc = run_recipe(tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


def test_every_stage_produces_its_output(recipe_run):
    tmp, _ = recipe_run
    data, exp = tmp / "data", tmp / "exp"
    for split in ("train", "dev", "test_clean", "test_other"):
        assert (data / f"cuts_{split}.jsonl.gz").is_file()
    assert (data / "tokenizer" / "tokenizer.model").is_file()
    assert (exp / "model_avg.pt").is_file()
    for test_set, n_utts in (("test_clean", 3), ("test_other", 3)):
        scores = json.loads((exp / f"decode_{test_set}" / "scores.json").read_text())
        assert [s["name"] for s in scores] == ["asr_eng"]
        assert scores[0]["num_utts"] == n_utts
        refs = (exp / f"decode_{test_set}" / "asr_eng" / "ref.txt").read_text().splitlines()
        # LibriSpeech utterance ids and lower-cased transcripts reach the scorer.
        assert all(line.split()[0].count("-") == 2 for line in refs)
        assert all(line.split(maxsplit=1)[1].islower() for line in refs)
    results = (tmp / "RESULTS.md").read_text()
    assert "## " + str(exp) + ": test-clean" in results
    assert "## " + str(exp) + ": test-other" in results
    assert "command: `cd egs/librispeech/s2t1 && ./run.sh" in results
    packed = load_pretrained(exp / "packed")
    assert packed.model.cfg.d_model == 32


def test_stages_are_resumable(recipe_run):
    tmp, _ = recipe_run
    before = (tmp / "data" / "cuts_train.jsonl.gz").stat().st_mtime_ns
    proc = run_recipe(tmp, "--stage", "1", "--stop_stage", "4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "skip: " in log and "finished training" in log
    assert (tmp / "data" / "cuts_train.jsonl.gz").stat().st_mtime_ns == before


def test_shar_stage_exports_shards_that_training_reads(recipe_run):
    tmp, _ = recipe_run
    args = ["--shar", "true", "--shard_size", "2", "--exp", str(tmp / "exp_shar")]
    proc = run_recipe(tmp, *args, "--stage", "3", "--stop_stage", "4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = json.loads((tmp / "data" / "shar_train" / "shar_index.json").read_text())
    assert index["num_cuts"] == 6 and len(index["shards"]) == 3
    assert (tmp / "exp_shar" / "model_avg.pt").is_file()
    assert "training from 3 Shar shards" in proc.stderr and "reshuffled each epoch" in proc.stderr


def test_missing_part_stops_the_recipe_naming_it(tmp_path):
    corpus_fakes.write_librispeech(tmp_path / "corpus", ["train-clean-100", "dev-clean"])
    proc = run_recipe(tmp_path, "--stop_stage", "1")
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "test-clean: directory" in log and "is missing" in log
    assert not (tmp_path / "data" / "cuts_train.jsonl.gz").exists()


def test_fine_tuning_a_pretrained_model_skips_the_tokenizer(recipe_run):
    # The packed model of the first run stands in for a zoo model (--init owsm-v3.1-ebf-base).
    tmp, _ = recipe_run
    config = ROOT / "conf" / "s2t" / "owsm_finetune_librispeech.yaml"
    args = ["--init", str(tmp / "exp" / "packed"), "--config", str(config)]
    proc = run_recipe(tmp, *args, "--exp", str(tmp / "exp_ft"), "--stage", "2", "--stop_stage", "4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stage 2" not in proc.stdout and "stage 4: train" in proc.stdout
    assert "--init" in proc.stderr and "model section replaced" in proc.stderr
    ckpt = torch.load(tmp / "exp_ft" / "model_avg.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["optim"]["scheduler"] == "warmup_linear"  # the fine-tuning config's
