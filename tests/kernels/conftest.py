"""Runs the Triton kernels on CPU through Triton's interpreter when there is no CUDA device.

Triton 3.x reads ``TRITON_INTERPRET`` when a ``@triton.jit`` function is decorated: its own
library functions (``tl.zeros`` ...) are decorated when ``triton`` is first imported, and
speechkit's kernels when their module is first used (lazily, on the first kernel call). So the
variable is set while this file imports triton, and again for each test (monkeypatch), which is
when the kernel module gets imported; it does not leak into other test directories. On a CUDA
machine nothing is set and the same tests run the compiled kernels.
"""

import os
import sys

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_PREIMPORTED = "triton" in sys.modules  # then it was imported without the interpreter

if DEVICE == "cpu" and not _PREIMPORTED:
    _previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pytest.importorskip("triton")
    finally:
        if _previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = _previous
pytest.importorskip("triton")


@pytest.fixture(autouse=True)
def _triton_interpreter(monkeypatch):
    if DEVICE == "cpu":
        if _PREIMPORTED and os.environ.get("TRITON_INTERPRET") != "1":
            pytest.skip("triton was imported before TRITON_INTERPRET=1: run tests/kernels first")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
