"""tools/bench_attention.py without a GPU: ``--smoke`` measures every CPU-capable backend at a
tiny shape (the kernel under Triton's interpreter) and writes one JSON line per row as it goes;
``--dry-run`` lists the GPU rows without touching a GPU."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_attention", ROOT / "tools/bench_attention.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.interpreter
def test_smoke_writes_a_row_per_backend_and_batch_kind(tmp_path, monkeypatch, capsys):
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        pytest.skip("--smoke is the CPU interpreter run")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # main sets it; keep it from leaking
    jsonl = tmp_path / "rows.jsonl"
    assert _bench().main(["--smoke", "--skip-encoder", "--jsonl", str(jsonl)]) == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    kinds = {(r["batch_kind"], r["backend"]) for r in rows}
    assert kinds == {
        (k, b) for k in ("padded", "unpadded") for b in ("triton", "sdpa (mask)", "eager")
    }
    assert all(r["fwd_tflops"] > 0 and r["fwd_bwd_tflops"] > 0 for r in rows)
    padded = [r for r in rows if r["batch_kind"] == "padded"]
    assert all(r["valid"] < 1 for r in padded)
    assert all(r["valid"] == 1 for r in rows if r["batch_kind"] == "unpadded")
    assert "| 40 | padded | 37 |" in capsys.readouterr().out


def test_dry_run_lists_the_gpu_rows(capsys):
    assert _bench().main(["--dry-run", "--head-dims", "64", "80", "--lengths", "512", "4096"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 48 attention rows planned" in out  # 2 dims x 2 kinds x 2 lengths x 6 backends
    assert "head dim 80, unpadded, length 4096" in out and "eager" in out
