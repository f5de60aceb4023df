"""End to end: every stage of egs/must_c/s2t1/run.sh on a miniature MuST-C, on CPU.

The fixture writes two talks' worth of tone "segments" where MuST-C keeps them (``en-de/data/
<split>/wav/ted_<talk>.wav``, with the yaml segment list and the parallel ``.en`` / ``.de``
text); the recipe then prepares them with lhotse's recipe (``--download false``), trains a
tokenizer, exports Shar shards, trains a very small model for two steps on both tasks, decodes
tst-COMMON for translation and transcription, scores BLEU and WER into RESULTS.md and packs the
model. Fine-tuning from the zoo is run with stand-ins: the packed model of the first run for
OWSM, and a tiny random Whisper. This checks that the stages fit together, not the figures.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
import corpus_fakes  # noqa: E402
import whisper_fakes  # noqa: E402

from speechkit.pretrained import load_pretrained  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "egs" / "must_c" / "s2t1"
SMALL_RUN = [
    "data.sampler.max_duration=4",
    "data.sampler.max_cut_duration=4",
    "data.num_workers=0",
    "trainer.max_steps=2",
    "trainer.average_best=2",
    "trainer.device=cpu",
]
TINY_MODEL = [
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
    "data.sampler.num_buckets=2",
    "trainer.accum_grad=1",
]


def overrides(items: list[str]) -> str:
    return " ".join(f"--set {kv}" for kv in items)


def tiny_config(tmp: Path) -> Path:
    """The recipe's config with a tokenizer that a dozen sentences can train."""
    cfg = yaml.safe_load((ROOT / "conf" / "s2t" / "must_c_ende.yaml").read_text())
    cfg["tokenizer"] = {"vocab_size": 60, "model_type": "unigram"}
    path, text = tmp / "must_c_tiny.yaml", yaml.safe_dump(cfg)
    if not path.is_file() or path.read_text() != text:  # (a newer config retrains the tokenizer)
        path.write_text(text)
    return path


def run_recipe(tmp: Path, *args: str, train_args: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    cmd = ["bash", str(RECIPE / "run.sh"), "--data_root", str(tmp / "corpus")]
    cmd += ["--data", str(tmp / "data"), "--exp", str(tmp / "exp"), "--nj", "1"]
    cmd += ["--results", str(tmp / "RESULTS.md"), "--beam", "2", "--config", str(tiny_config(tmp))]
    cmd += ["--train_args", train_args or overrides(TINY_MODEL + SMALL_RUN), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("must_c")
    corpus_fakes.write_must_c(tmp / "corpus")
    proc = run_recipe(tmp, "--shar", "true", "--shard_size", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc


def test_every_stage_produces_its_output(recipe_run):
    tmp, proc = recipe_run
    data, exp = tmp / "data", tmp / "exp"
    for split in ("train", "dev", "tst_COMMON", "tst_HE"):
        assert (data / f"cuts_{split}.jsonl.gz").is_file()
    assert json.loads((data / "shar_train" / "shar_index.json").read_text())["num_cuts"] == 6
    assert "training from 3 Shar shards" in proc.stderr
    assert (exp / "model_avg.pt").is_file()
    decode = exp / "decode_tst-COMMON"
    scores = json.loads((decode / "scores.json").read_text())
    assert [(s["name"], s["kind"], s["num_utts"]) for s in scores] == [
        ("asr_eng", "asr", 3),
        ("st_eng-deu", "st", 3),
    ]
    # The references are MuST-C's own lines: the English transcript and the German translation.
    txt = tmp / "corpus" / "en-de" / "data" / "tst-COMMON" / "txt"
    refs = {d: [ln.split(" ", 1)[1] for ln in lines(decode / d / "ref.txt")] for d in
            ("asr_eng", "st_eng-deu")}  # fmt: skip
    assert refs["asr_eng"] == lines(txt / "tst-COMMON.en")
    assert refs["st_eng-deu"] == lines(txt / "tst-COMMON.de")
    assert all(
        ln.split()[0].startswith("en-de-ted_1096-") for ln in lines(decode / "asr_eng/hyp.txt")
    )


def test_results_have_bleu_and_wer_with_the_command(recipe_run):
    tmp, _ = recipe_run
    results = (tmp / "RESULTS.md").read_text()
    assert f"## {tmp / 'exp'}: tst-COMMON" in results
    header = next(ln for ln in results.splitlines() if ln.startswith("| output"))
    assert "WER %" in header and "BLEU" in header and "chrF" in header
    rows = {ln.split("|")[1].strip(): ln.split("|")[2:] for ln in results.splitlines()
            if ln.startswith(("| asr_eng", "| st_eng-deu"))}  # fmt: skip
    columns = [c.strip() for c in header.split("|")[2:]]
    wer_col, bleu_col = columns.index("WER %"), columns.index("BLEU")
    assert float(rows["asr_eng"][wer_col].split()[0]) >= 0
    assert 0 <= float(rows["st_eng-deu"][bleu_col]) <= 100
    assert "command: `cd egs/must_c/s2t1 && ./run.sh --data_root <MuST-C>" in results


def test_packed_model_loads_with_its_translation_task(recipe_run):
    tmp, _ = recipe_run
    packed = load_pretrained(tmp / "exp" / "packed")
    assert packed.model.cfg.d_model == 32
    assert "st_deu" in packed.tokenizer.tasks and "eng" in packed.tokenizer.languages
    assert packed.tasks["st_directions"] == ["eng-deu"]


def test_stages_are_resumable(recipe_run):
    tmp, _ = recipe_run
    before = (tmp / "data" / "cuts_train.jsonl.gz").stat().st_mtime_ns
    # (Without --shar: the finished training is recognised by its config, not its data path.)
    proc = run_recipe(tmp, "--stage", "1", "--stop_stage", "4")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "already holds MuST-C ['en-de']" in log and "finished training with this config" in log
    assert "tokenizer.model is newer than its inputs" in log
    assert (tmp / "data" / "cuts_train.jsonl.gz").stat().st_mtime_ns == before


def test_fine_tuning_an_owsm_style_model_translates_and_transcribes(recipe_run):
    # The packed model of the first run stands in for a zoo model (--init owsm-v3.1-ebf-base).
    tmp, _ = recipe_run
    config = ROOT / "conf" / "s2t" / "owsm_finetune_must_c.yaml"
    args = ["--init", str(tmp / "exp" / "packed"), "--config", str(config)]
    args += ["--exp", str(tmp / "exp_ft"), "--stage", "2", "--stop_stage", "5"]
    proc = run_recipe(tmp, *args, train_args=overrides(SMALL_RUN))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stage 2" not in proc.stdout and "model section replaced" in proc.stderr
    ckpt = torch.load(tmp / "exp_ft" / "model_avg.pt", map_location="cpu", weights_only=False)
    assert ckpt["config"]["optim"]["scheduler"] == "warmup_linear"  # the fine-tuning config's
    decode = tmp / "exp_ft" / "decode_tst-COMMON"
    outputs = json.loads((decode / "decode_stats.json").read_text())["outputs"]
    assert outputs == {"asr_eng": 3, "st_eng-deu": 3}


def test_fine_tuning_whisper_is_english_asr_only(recipe_run):
    tmp, _ = recipe_run
    pytest.importorskip("tokenizers")
    whisper = whisper_fakes.write_tiny_whisper(tmp / "tiny-whisper")
    config = ROOT / "conf" / "whisper" / "finetune_base_must_c.yaml"
    args = ["--init", str(whisper), "--config", str(config), "--ctc_weight", "0"]
    args += ["--exp", str(tmp / "exp_whisper"), "--stage", "4", "--stop_stage", "6"]
    train_args = overrides([*SMALL_RUN, "trainer.max_steps=1", "whisper.pad_to_window=false"])
    proc = run_recipe(tmp, *args, train_args=train_args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    decode = tmp / "exp_whisper" / "decode_tst-COMMON"
    # Whisper translates only into English: the German references are not decoded.
    assert sorted(p.name for p in decode.iterdir() if p.is_dir()) == ["asr_eng"]
    assert len(lines(decode / "asr_eng" / "hyp.txt")) == 3
    section = (tmp / "RESULTS.md").read_text().split(f"## {tmp / 'exp_whisper'}: tst-COMMON")[1]
    assert "| asr_eng |" in section.split("\n## ")[0] and "st_eng" not in section.split("\n## ")[0]
    assert load_pretrained(tmp / "exp_whisper" / "model_avg.pt").model_type == "whisper"


def test_a_missing_split_stops_the_recipe_naming_it(tmp_path):
    corpus_fakes.write_must_c(tmp_path / "corpus", splits=("train", "dev", "tst-COMMON"))
    proc = run_recipe(tmp_path, "--stop_stage", "1")
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "en-de/tst-HE: directory" in log and "is missing" in log
    assert not (tmp_path / "data" / "cuts_train.jsonl.gz").exists()


def test_download_true_says_where_to_get_must_c(tmp_path):
    proc = run_recipe(tmp_path, "--download", "true", "--stop_stage", "1")
    assert proc.returncode != 0
    assert "licence form at https://ict.fbk.eu/must-c-releases/" in proc.stdout + proc.stderr
