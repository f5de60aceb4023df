"""GPU kernels for speechkit, importable as ``speechkit.kernels`` (see kernels/README.md).

The kernel sources live in the repository's top-level ``kernels/`` directory, where the product
layout puts them (beside their README and RESULTS), not inside the package. Appending that
directory to this package's ``__path__`` makes ``speechkit.kernels.flash_attention`` resolve to
``kernels/flash_attention.py``. This works the same from an editable install (``pip install -e``)
and from a plain ``PYTHONPATH=<repo>`` checkout, e.g. on a GPU box without network.

Importing this package never imports Triton: the Triton kernels are loaded on first use, so the
reference path works where Triton is missing.
"""

from pathlib import Path

_KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
if not _KERNELS_DIR.is_dir():
    raise ImportError(
        f"speechkit.kernels expects the kernel sources in {_KERNELS_DIR}; this speechkit was "
        "installed without the repository's top-level kernels/ directory"
    )
__path__.append(str(_KERNELS_DIR))

from speechkit.kernels.flash_attention import (  # noqa: E402
    flash_attention,
    flash_attention_ref,
    kernel_available,
)

__all__ = ["flash_attention", "flash_attention_ref", "kernel_available"]
