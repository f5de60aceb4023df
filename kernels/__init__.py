"""GPU kernels for speechkit, installed as ``speechkit.kernels`` (see README.md beside this file).

The sources live in the repository's top-level ``kernels/`` directory, beside their README and
RESULTS; ``setup.py`` maps that directory onto the package name ``speechkit.kernels``
(``package_dir``), so a wheel or an editable install imports it like any subpackage. A bare
source checkout on ``PYTHONPATH`` has no such mapping: there ``speechkit.kernels`` is not
importable, and ``attention_backend: triton`` falls back to SDPA saying so (the test suite and
``tools/gpu_check.sh`` map it themselves).

Importing this package never imports Triton: the Triton kernels are loaded on first use, so the
reference path works where Triton is missing.
"""

from .flash_attention import flash_attention, flash_attention_ref, kernel_available

__all__ = ["flash_attention", "flash_attention_ref", "kernel_available"]
