"""The prune_whisper task end to end on a tiny random Whisper model: gated fine-tuning through
``speechkit train`` logs the sparsity toward its budget, the checkpoint loads and packs as a
``gated_whisper`` model, ``speechkit decode --budget`` decodes it with its gates and reports the
decoder GFLOPs, and bad requests are clear errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from speechkit.bin import decode, train
from speechkit.config import ConfigError, load_config
from speechkit.models.gated_whisper import GatedWhisperModel
from speechkit.pretrained import load_pretrained, pack
from speechkit.tasks.prune_whisper import WhisperPruneConfig

pytest.importorskip("tokenizers")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from whisper_fakes import tone_cuts, write_tiny_whisper  # noqa: E402

YAML = """
task: prune_whisper
whisper: {pad_to_window: false}
gates: {gate_mode: %s, gate_tau: 0.5}
prune: {alpha: 4.0, budget_min: 0.3, budget_max: 0.3, valid_budget: 0.3}
predictor_lr: 0.02
data:
  sampler: {max_duration: 20.0, max_cut_duration: 20.0, bucketing: false, shuffle: false}
  asr_languages: [eng, deu]
  st_directions: [deu-eng]
optim: {lr: 0.001, warmup_steps: 1, scheduler: constant, weight_decay: 0.0}
trainer: {max_steps: 30, max_epochs: 100, log_every_steps: 1, valid_every_steps: 15,
          device: cpu, keep_checkpoints: 1, average_best: 1,
          select_by: step, select_mode: max}  # the last model: the best by loss may predate pruning
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune_whisper")
    packed = write_tiny_whisper(root / "init", n_text_layer=2)
    tone_cuts(root, 4).to_file(root / "train.jsonl.gz")
    tone_cuts(root, 2, offset=10).to_file(root / "dev.jsonl.gz")
    for mode in ("dynamic", "none"):
        (root / f"{mode}.yaml").write_text(YAML % mode)
    return root, packed


def _train(root: Path, packed: Path, mode: str) -> Path:
    out = root / f"exp_{mode}"
    argv = ["--config", str(root / f"{mode}.yaml"), "--init", str(packed),
            "--train-cuts", str(root / "train.jsonl.gz"),
            "--dev-cuts", str(root / "dev.jsonl.gz"), "--out", str(out)]  # fmt: skip
    assert train.main(argv) == 0
    return out


def test_gated_finetuning_reaches_its_budget_and_decodes_with_gates(setup, tmp_path):
    root, packed = setup
    out = _train(root, packed, "dynamic")
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    kept = [float(r["kept"]) for r in rows]
    assert kept[0] > 0.8  # every gate starts on
    assert sum(kept[-5:]) / 5 < 0.6, kept  # the penalty pulls toward the budget 0.3
    assert {"sparsity", "loss_task", "dec_ffn", "dec_cross_attn", "dec_self_attn"} <= set(rows[0])
    pre = load_pretrained(out / "model_avg.pt")
    assert pre.model_type == "gated_whisper" and isinstance(pre.model, GatedWhisperModel)
    assert load_pretrained(pack(out / "model_avg.pt", tmp_path / "packed")).model_type == (
        "gated_whisper"
    )
    dec = tmp_path / "dec"
    argv = ["--model", str(out / "model_avg.pt"), "--cuts", str(root / "dev.jsonl.gz"),
            "--out", str(dec), "--beam-size", "2", "--max-len", "6"]  # fmt: skip
    assert decode.main([*argv, "--budget", "0.3"]) == 0
    stats = json.loads((dec / "decode_stats.json").read_text())
    gates = stats["gates"]
    assert gates["budget"] == 0.3 and gates["windows"] >= 2
    assert 0.0 < gates["sparsity"] < 1.0
    assert gates["gflops_dec"] < gates["gflops_dec_full"]
    assert (dec / "asr_eng" / "hyp.txt").is_file() or any(dec.glob("*/hyp.txt"))
    # A gated model needs a budget; the full-budget decode skips nothing.
    assert decode.main(argv) == 2
    assert decode.main([*argv, "--budget", "1.5"]) == 2


def test_full_finetuning_arm_has_no_gates_and_plain_models_refuse_a_budget(setup, tmp_path):
    root, packed = setup
    out = _train(root, packed, "none")
    with open(out / "train_log.csv") as f:
        assert "sparsity" not in next(csv.DictReader(f))
    pre = load_pretrained(out / "model_avg.pt")
    assert pre.model_type == "gated_whisper" and pre.model.predictor is None
    argv = ["--model", str(packed), "--cuts", str(root / "dev.jsonl.gz"),
            "--out", str(tmp_path / "dec"), "--max-len", "4", "--budget", "0.5"]  # fmt: skip
    assert decode.main(argv) == 2  # a plain Whisper model has no gates


def test_config_rules(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(YAML % "dynamic" + "\n")
    cfg = load_config(WhisperPruneConfig, path)
    assert cfg.gates.gate_mode == "dynamic" and cfg.predictor_lr == 0.02
    path.write_text((YAML % "dynamic").replace("alpha: 4.0", "alpha: 4.0, contexts_dir: ctx"))
    with pytest.raises(ConfigError, match="contexts"):
        load_config(WhisperPruneConfig, path)
    path.write_text((YAML % "dynamic").replace("alpha: 4.0", "alpha: 4.0, split_budget: true"))
    with pytest.raises(ConfigError, match="split_budget"):
        load_config(WhisperPruneConfig, path)
    path.write_text((YAML % "dynamic").replace("predictor_lr: 0.02", "predictor_lr: 0"))
    with pytest.raises(ConfigError, match="predictor_lr"):
        load_config(WhisperPruneConfig, path)
    path.write_text((YAML % "dynamic").replace("gate_tau: 0.5", "gate_tau: 0.5, heads: 2"))
    with pytest.raises(ConfigError, match="heads"):
        load_config(WhisperPruneConfig, path)


def test_stored_config_fills_fields_added_since_in_its_model_and_data_sections(setup, tmp_path):
    """run_config's ``model`` and ``data`` are the model's and the dataset's configs (not the
    task config's sections of those names): a stored config lacking a field of either gets the
    field's default back, and a current run_config is left exactly as it is."""
    from speechkit.tasks.base import TaskInputs
    from speechkit.tasks.prune_whisper import WhisperPruneTask

    root, packed = setup
    path = tmp_path / "c.yaml"
    path.write_text(YAML % "dynamic")
    task = WhisperPruneTask(load_config(WhisperPruneConfig, path), TaskInputs(init=str(packed)))
    current = task.run_config()
    assert task.fill_stored_config(current) == current
    old = json.loads(json.dumps(current))
    del old["model"]["gate_budget_gain"], old["data"]["num_workers"], old["predictor_lr"]
    filled = task.fill_stored_config(old)
    assert filled["model"]["gate_budget_gain"] == 0.0
    assert filled["data"]["num_workers"] == current["data"]["num_workers"]
    assert filled["predictor_lr"] == 1.0e-3  # the field's default, not this run's 0.02
