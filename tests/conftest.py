"""Session-wide test settings.

Triton reads ``TRITON_INTERPRET`` when it is first imported and when kernels are decorated. On a
machine without CUDA the kernel tests run through the interpreter, so the variable is set before
any test module can import triton (see tests/kernels/conftest.py). With CUDA the compiled kernels
run and nothing is set.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
