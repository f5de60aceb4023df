"""Runs ``flash_attention_cases.py`` (the flash attention kernel against its float32 reference,
forward and backward, on small odd shapes) in a child pytest process.

Why a child process: on CPU the kernels run in Triton's interpreter, and in full-suite runs the
backward op has died 4 times in about 20 runs inside torch's dispatcher (a segmentation fault,
``std::bad_alloc``, ``ValueError: vector::reserve``), the signs of a corrupted heap, while the
same cases alone passed every time (``kernels/README.md``, "Known issue"). A child with only the
kernel's imports keeps one interpreter failure from taking down the whole suite and runs the
cases as they would run alone; the cases and their assertions are unchanged, and a failing case
fails this test with the child's report.
"""

import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).resolve().parent / "flash_attention_cases.py"


def _run_cases(marker: str) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES),
           "-m", marker]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    report = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{report}"
    assert " passed" in proc.stdout, report


def test_kernel_cases_pass_in_a_child_process():
    _run_cases("not cuda")


@pytest.mark.cuda
def test_cuda_kernel_cases_pass_in_a_child_process():
    _run_cases("cuda")
