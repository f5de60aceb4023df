"""End to end: the prune task (speechkit/tasks/prune.py) fine-tunes a trained tiny s2t model with
gates and stored contexts, logs its sparsity, and its checkpoint loads as a gated model."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml
from lhotse import CutSet

from speechkit.bin import train as train_bin
from speechkit.config import ConfigError
from speechkit.data.contexts import write_context_store
from speechkit.models.gated_s2t import GatedS2TModel
from speechkit.pretrained import load_pretrained

PRUNE_YAML = """
task: prune
model: {n_mels: 20, gate_mode: dynamic, gate_contexts: [speaker, language], gate_hidden: 16}
prune: {contexts_dir: CONTEXTS, alpha: 2.0, budget_min: 0.3, budget_max: 0.7}
data:
  features: {n_mels: 20}
  sampler: {max_duration: 4.0, num_buckets: 2, max_cut_duration: 4.0}
  asr_languages: [eng]
  st_directions: [eng-deu]
  max_target_tokens: 40
optim: {lr: 0.002, warmup_steps: 2}
trainer: {max_steps: 3, log_every_steps: 1, device: cpu, average_best: 1}
"""


def _train(argv: list[str]) -> int:
    return train_bin.main(argv)


@pytest.fixture(scope="module")
def base(tiny_corpus, tmp_path_factory):
    """A tiny trained s2t model (2 steps) and fake speaker contexts (tests only) for the
    training cuts, one of them left unknown."""
    out = tmp_path_factory.mktemp("base")
    argv = ["--config", str(tiny_corpus["config"]), "--train-cuts", str(tiny_corpus["train"]),
            "--tokenizer", str(tiny_corpus["tokenizer"]), "--out", str(out / "s2t"),
            "--set", "trainer.max_steps=2", "model.encoder_type=ebranchformer"]  # fmt: skip
    assert _train(argv) == 0
    ids = [c.id for c in CutSet.from_file(tiny_corpus["train"])]
    valid = torch.ones(len(ids), dtype=torch.bool)
    valid[0] = False
    write_context_store(out / "contexts", "speaker", ids, torch.randn(len(ids), 6), valid)
    (out / "prune.yaml").write_text(PRUNE_YAML.replace("CONTEXTS", str(out / "contexts")))
    return out


def _prune_argv(corpus, base, out, *sets):
    return ["--config", str(base / "prune.yaml"), "--train-cuts", str(corpus["train"]),
            "--dev-cuts", str(corpus["dev"]), "--init", str(base / "s2t" / "model_avg.pt"),
            "--out", str(out), "--set", *sets]  # fmt: skip


def test_prune_trains_logs_sparsity_and_loads_as_a_gated_model(tiny_corpus, base, tmp_path):
    out = tmp_path / "prune"
    assert _train(_prune_argv(tiny_corpus, base, out, "model.gate_tau=2.0")) == 0
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    for key in (
        "loss_task",
        "kept",
        "kept_dec",
        "sparsity",
        "budget",
        "enc_attn",
        "dec_cross_attn",
    ):
        assert key in rows[0], key
    assert all(0.0 <= float(r["kept"]) <= 1.0 for r in rows)
    assert all(0.3 <= float(r["budget"]) <= 0.7 for r in rows)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["gate_tau"] == 2.0 and config["model"]["context_dims"] == {"speaker": 6}
    pre = load_pretrained(out / "model_avg.pt")
    assert pre.model_type == "gated_s2t" and isinstance(pre.model, GatedS2TModel)
    assert pre.config.languages == ["eng", "deu"]


@pytest.mark.parametrize("mode", ["static", "none"])
def test_static_and_full_finetune_arms_are_configs_of_the_task(tiny_corpus, base, tmp_path, mode):
    out = tmp_path / mode
    sets = [f"model.gate_mode={mode}", "model.gate_contexts=[]", "trainer.max_steps=2"]
    assert _train(_prune_argv(tiny_corpus, base, out, *sets)) == 0
    with open(out / "train_log.csv") as f:
        row = next(csv.DictReader(f))
    assert ("kept" in row) == (mode == "static")
    if mode == "none":  # the full fine-tune is an s2t model to gate (pruning after fine-tuning)
        argv = _prune_argv(tiny_corpus, base, tmp_path / "gated", "trainer.max_steps=1")
        argv[argv.index("--init") + 1] = str(out / "model_avg.pt")
        assert _train(argv) == 0
        assert load_pretrained(tmp_path / "gated" / "model_avg.pt").config.gate_mode == "dynamic"


@pytest.mark.parametrize("mode", ["dynamic", "none"])
def test_distillation_from_the_init_model_is_logged_and_leaves_the_teacher_alone(
    tiny_corpus, base, tmp_path, mode
):
    out = tmp_path / mode
    sets = [f"model.gate_mode={mode}", "trainer.max_steps=2", "prune.distill=1.0"]
    assert _train(_prune_argv(tiny_corpus, base, out, *sets)) == 0
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    # step 1 starts from the teacher's own weights: the gates (dynamic) or nothing (none) make
    # it differ, so KL is >= 0 and after an update > 0
    assert all(float(r["loss_kd"]) >= 0 for r in rows) and float(rows[-1]["loss_kd"]) > 0
    with open(out / "valid_log.csv") as f:
        assert "loss_kd" not in next(csv.DictReader(f))  # validation is the task's loss
    teacher = load_pretrained(base / "s2t" / "model_avg.pt").model.state_dict()
    student = load_pretrained(out / "model_avg.pt").model.state_dict()
    assert not torch.equal(student["decoder.embed.weight"], teacher["decoder.embed.weight"])


def test_distill_loss_is_kl_over_the_valid_positions():
    from speechkit.tasks.prune import PruneOptions, distill_loss

    torch.manual_seed(0)
    teacher = torch.randn(2, 3, 5)
    valid = torch.tensor([[True, True, False], [True, False, False]])
    assert distill_loss(teacher + 7.0, teacher, valid).abs() < 1e-6  # same distributions
    # log-probs or logits: the same distributions
    assert distill_loss(teacher.log_softmax(-1), teacher, valid).abs() < 1e-6
    student = teacher.clone()
    student[0, 2] = torch.randn(5) * 5  # an invalid position: no effect
    assert distill_loss(student, teacher, valid).abs() < 1e-6
    student[1, 0] = torch.tensor([9.0, 0, 0, 0, 0])
    t, s = teacher[1, 0].log_softmax(-1), student[1, 0].log_softmax(-1)
    expected = (t.exp() * (t - s)).sum() / 3  # one of the 3 valid positions differs
    assert torch.allclose(distill_loss(student, teacher, valid), expected)
    assert distill_loss(student, teacher, torch.zeros_like(valid)) == 0
    with pytest.raises(ConfigError, match="distill"):
        PruneOptions(distill=-1.0)
    with pytest.raises(ConfigError, match="only used with prune.distill"):
        PruneOptions(teacher="exp/full/s0/model_avg.pt")


def test_prune_needs_init_and_a_known_context(tiny_corpus, base, tmp_path, capsys):
    from speechkit.tasks.prune import PruneConfig, PruneTask

    cfg = PruneConfig()
    with pytest.raises(ConfigError, match="give --init"):
        PruneTask(cfg)
    bad = _prune_argv(tiny_corpus, base, tmp_path / "x", "model.gate_contexts=[accent]")
    with pytest.raises(SystemExit):  # argparse's error, naming the key
        _train(bad)
    assert "unknown ['accent']" in capsys.readouterr().err


@pytest.fixture(scope="module")
def pruned(tiny_corpus, base, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "prune"
    assert _train(_prune_argv(tiny_corpus, base, out, "trainer.max_steps=2")) == 0
    return out / "model_avg.pt"


def test_settle_trains_the_weights_under_the_frozen_predictors_gates(tiny_corpus, base, pruned,
                                                                     tmp_path):  # fmt: skip
    out = tmp_path / "settle"
    argv = _prune_argv(tiny_corpus, base, out, "prune.settle=true", "trainer.max_steps=2")
    argv[argv.index("--init") + 1] = str(pruned)
    assert _train(argv) == 0
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    # no sparsity penalty (the frozen argmax gates take no gradient); kept is still logged
    assert all(float(r["loss"]) == float(r["loss_task"]) for r in rows)
    assert all(0.0 <= float(r["kept"]) <= 1.0 for r in rows)
    before = load_pretrained(pruned).model.state_dict()
    after = load_pretrained(out / "model_avg.pt").model.state_dict()
    predictor = [k for k in before if k.startswith("predictor.")]
    assert predictor and all(torch.equal(before[k], after[k]) for k in predictor)
    assert not torch.equal(before["decoder.embed.weight"], after["decoder.embed.weight"])


def test_settle_distils_from_a_named_teacher_and_refuses_a_gated_one(tiny_corpus, base, pruned,
                                                                    tmp_path, capsys):  # fmt: skip
    teacher = base / "s2t" / "model_avg.pt"

    def argv(out, *sets):
        a = _prune_argv(tiny_corpus, base, out, "prune.settle=true", "trainer.max_steps=2",
                        "prune.distill=1.0", *sets)  # fmt: skip
        a[a.index("--init") + 1] = str(pruned)
        return a

    assert _train(argv(tmp_path / "kd", f"prune.teacher={teacher}")) == 0
    with open(tmp_path / "kd" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["loss_kd"]) > 0 for r in rows)
    for sets in ([], [f"prune.teacher={pruned}"]):  # --init (gated) or a gated teacher
        with pytest.raises(SystemExit):
            _train(argv(tmp_path / "bad", *sets))
        assert "must be an ungated s2t model" in capsys.readouterr().err


def test_hard_gates_are_the_argmax_in_training_too(pruned):
    model = load_pretrained(pruned).model.train()
    logits = torch.randn(4, 7, 2)
    sampled = [model._gates(logits) for _ in range(8)]  # Gumbel noise: not always the argmax
    argmax = logits.argmax(-1).float()
    assert any(not torch.equal(g, argmax) for g in sampled)
    model.hard_gates = True
    assert all(torch.equal(model._gates(logits), argmax) for _ in range(3))


@pytest.mark.parametrize(
    ("init", "sets", "message"),
    [
        ("base", ["prune.settle=true"], "prune.settle trains a gated model"),
        ("pruned", ["prune.settle=true", "model.gate_mode=none"], "prune.settle trains a gated"),
        ("pruned", [], "only prune.settle continues one"),
        ("pruned", ["prune.settle=true", "model.gate_hidden=8"], "gate_hidden: 16 in --init, 8"),
        ("pruned", ["prune.settle=true", "model.gate_contexts=[speaker]"], "gate_contexts"),
    ],
)
def test_settle_refuses_an_init_that_does_not_fit(tiny_corpus, base, pruned, tmp_path, capsys,
                                                  init, sets, message):  # fmt: skip
    argv = _prune_argv(tiny_corpus, base, tmp_path / "x", "trainer.max_steps=1", *sets)
    if init == "pruned":
        argv[argv.index("--init") + 1] = str(pruned)
    with pytest.raises(SystemExit):
        _train(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("language", ["lid", "oracle"])
def test_decode_at_a_budget_writes_gflops_and_sparsity(tiny_corpus, base, pruned, tmp_path,
                                                       language):  # fmt: skip
    from speechkit.bin import decode as decode_bin

    def decode(out, budget, batch_duration):
        argv = ["--model", str(pruned), "--cuts", str(tiny_corpus["dev"]), "--out", str(out),
                "--beam-size", "1", "--budget", str(budget), "--contexts", str(base / "contexts"),
                "--language-context", language, "--batch-duration", str(batch_duration),
                "--tasks", "asr"]  # fmt: skip
        assert decode_bin.main(argv) == 0
        return json.loads((out / "decode_stats.json").read_text())["gates"]

    full = decode(tmp_path / "b1", 1.0, 100.0)
    single = decode(tmp_path / "b1_single", 1.0, 0.1)  # one cut per batch
    assert full["items"] == single["items"] == 4
    assert full["gflops_enc"] == pytest.approx(single["gflops_enc"])
    rows = [json.loads(line) for line in (tmp_path / "b1" / "asr_eng" / "gates.jsonl").open()]
    assert len(rows) == 4 and all(0.0 <= r["sparsity"] <= 1.0 for r in rows)
    assert all(r["gflops_enc"] > 0 and r["gflops_dec"] > 0 for r in rows)
    assert all(r["gflops_enc"] + r["gflops_dec"] <= r["gflops_full"] * 1.5 for r in rows)
    # the dev cuts have no stored speaker context: the unknown vector, counted
    assert full["unknown_contexts"]["speaker"] >= 4
    if language == "lid":
        assert 0.0 <= full["lid_accuracy"] <= 1.0


def test_a_gated_model_needs_a_budget_and_a_plain_one_refuses_it(tiny_corpus, base, pruned,
                                                                  tmp_path):  # fmt: skip
    from speechkit.bin import decode as decode_bin

    common = ["--cuts", str(tiny_corpus["dev"]), "--out", str(tmp_path / "d"), "--beam-size", "1"]
    assert decode_bin.main(["--model", str(pruned), *common]) == 2
    plain = str(base / "s2t" / "model_avg.pt")
    assert decode_bin.main(["--model", plain, "--budget", "0.5", *common]) == 2


def test_prune_export_packs_a_plain_model_that_decodes(tiny_corpus, base, tmp_path, capsys):
    from speechkit.bin import decode as decode_bin
    from speechkit.bin import prune_export

    out = tmp_path / "static"
    sets = ["model.gate_mode=static", "model.gate_contexts=[]", "trainer.max_steps=2"]
    assert _train(_prune_argv(tiny_corpus, base, out, *sets)) == 0
    packed = tmp_path / "packed"
    argv = ["--model", str(out / "model_avg.pt"), "--budget", "0.5", "--out", str(packed)]
    assert prune_export.main(argv) == 0
    printed = capsys.readouterr().out
    assert "parameters:" in printed and "model.pt" in printed
    pre = load_pretrained(packed)
    assert pre.model_type == "s2t"
    argv = ["--model", str(packed), "--cuts", str(tiny_corpus["dev"]), "--out",
            str(tmp_path / "dec"), "--beam-size", "1", "--tasks", "asr"]  # fmt: skip
    assert decode_bin.main(argv) == 0
    assert len((tmp_path / "dec" / "asr_eng" / "hyp.txt").read_text().splitlines()) == 4
    # a dynamic model cannot be exported
    dyn = tmp_path / "dyn"
    assert _train(_prune_argv(tiny_corpus, base, dyn, "trainer.max_steps=1")) == 0
    argv = ["--model", str(dyn / "model_avg.pt"), "--budget", "0.5", "--out", str(tmp_path / "x")]
    assert prune_export.main(argv) == 2


def test_ffn_group_gates_train_decode_at_a_budget_and_export(tiny_corpus, base, tmp_path):
    from speechkit.bin import decode as decode_bin
    from speechkit.bin import prune_export

    out = tmp_path / "groups"
    sets = ["model.gate_ffn_groups=2", "model.gate_mode=static", "model.gate_contexts=[]",
            "trainer.max_steps=2"]  # fmt: skip
    assert _train(_prune_argv(tiny_corpus, base, out, *sets)) == 0
    with open(out / "train_log.csv") as f:
        row = next(csv.DictReader(f))
    assert "enc_ffn1" in row and "enc_ffn1.0" not in row  # rates averaged over groups
    pre = load_pretrained(out / "model_avg.pt")
    assert pre.config.gate_ffn_groups == 2 and "0.ffn1.1" in pre.model.enc_names
    dec = tmp_path / "dec"
    argv = ["--model", str(out / "model_avg.pt"), "--cuts", str(tiny_corpus["dev"]), "--out",
            str(dec), "--beam-size", "1", "--budget", "0.4", "--tasks", "asr"]  # fmt: skip
    assert decode_bin.main(argv) == 0
    rows = [json.loads(line) for line in (dec / "asr_eng" / "gates.jsonl").open()]
    assert len(rows) == 4 and all(len(r["enc_gates"]) == pre.model.n_enc for r in rows)
    assert all(r["gflops_enc"] + r["gflops_dec"] <= r["gflops_full"] * 1.5 for r in rows)
    packed = tmp_path / "packed"
    argv = ["--model", str(out / "model_avg.pt"), "--budget", "0.4", "--out", str(packed)]
    assert prune_export.main(argv) == 0
    assert load_pretrained(packed).model_type == "s2t"


def test_a_checkpoint_from_before_a_config_field_resumes(tiny_corpus, base, tmp_path):
    """A run written before ``model.gate_ffn_groups`` existed (its key stripped from the
    checkpoint's config and the done marker) resumes: the field takes its default, which keeps
    the old behaviour; a value really set otherwise still stops the resume, naming the key."""
    from speechkit.checkpoint import load_checkpoint, save_checkpoint
    from speechkit.train.checkpoint import latest_checkpoint

    out = tmp_path / "old"
    assert _train(_prune_argv(tiny_corpus, base, out, "trainer.max_steps=2")) == 0
    path = latest_checkpoint(out / "checkpoints")
    ckpt = load_checkpoint(path)
    del ckpt["config"]["model"]["gate_ffn_groups"]
    save_checkpoint(ckpt, path)
    marker = json.loads((out / "train_done.json").read_text())
    del marker["config"]["model"]["gate_ffn_groups"]
    (out / "train_done.json").write_text(json.dumps(marker))

    def logged_steps():
        with open(out / "train_log.csv") as f:
            return [int(r["step"]) for r in csv.DictReader(f)]

    # the same config: the finished run is recognised and not trained again
    assert _train([*_prune_argv(tiny_corpus, base, out, "trainer.max_steps=2"), "--resume"]) == 0
    assert logged_steps() == [1, 2]
    changed = _prune_argv(tiny_corpus, base, out, "trainer.max_steps=3", "model.gate_ffn_groups=2")
    with pytest.raises(ConfigError, match=r"config differs .* in model\.gate_ffn_groups\. Only"):
        _train([*changed, "--resume"])
    assert _train([*_prune_argv(tiny_corpus, base, out, "trainer.max_steps=3"), "--resume"]) == 0
    assert logged_steps() == [1, 2, 3]
    assert latest_checkpoint(out / "checkpoints").name == "step-3.pt"
