"""A wheel built from the repository carries kernels/ as ``speechkit.kernels``.

setup.py maps the top-level ``kernels/`` directory onto ``speechkit.kernels`` (``package_dir``).
This builds a real wheel (not an editable install) from a copy of the sources, installs it into
a bare directory, and imports it in a fresh interpreter whose working directory is outside the
repository and whose path does not hold it: ``speechkit.kernels`` must come from the install, and
without a GPU the ``triton`` attention backend must fall back to SDPA and say why.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Looked up, not imported: importing setuptools after distutils (as torch's imports may have)
# trips its distutils override. pip builds in its own process.
if not all(importlib.util.find_spec(m) for m in ("pip", "setuptools")):
    pytest.skip("building a wheel without build isolation needs pip and setuptools",
                allow_module_level=True)  # fmt: skip

PROBE = r"""
import json, logging, sys
sys.path.insert(0, SITE)
logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
import torch
import speechkit, speechkit.kernels
from speechkit.nn.attention import attention_calls, scaled_dot_product
from speechkit.nn.masks import lengths_to_mask

q = k = v = torch.randn(2, 2, 5, 8)
lens = torch.tensor([5, 3])
out = scaled_dot_product(q, k, v, lengths_to_mask(lens, 5)[:, None, None, :], "triton",
                         key_lens=lens)
print(json.dumps({
    "speechkit": speechkit.__file__,
    "kernels": speechkit.kernels.__file__,
    "modules": sorted(m for m in sys.modules if m.startswith("speechkit.kernels")),
    "repo_on_path": any(p and ROOT == p.rstrip("/") for p in sys.path),
    "calls": dict(attention_calls()),
    "kernel_reason": speechkit.kernels.kernel_available(q),
    "finite": bool(torch.isfinite(out).all()),
}))
"""


def _sources(dst: Path) -> Path:
    """A copy of what setup.py packages: building in the checkout would leave build/ there."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("speechkit", "kernels"):
        shutil.copytree(ROOT / name, dst / name, ignore=skip)
    shutil.copy2(ROOT / "setup.py", dst / "setup.py")
    return dst


def test_wheel_installs_kernels_as_a_subpackage_that_falls_back_without_a_gpu(tmp_path):
    src = _sources(tmp_path / "src")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w"]
    subprocess.run([*build, str(tmp_path / "dist"), str(src)], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("speechkit-*.whl")
    site = tmp_path / "site"
    install = [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, timeout=300)
    for pattern in ("*.py", "*.cpp"):  # the C++ source is compiled on first use
        assert sorted(p.name for p in (site / "speechkit/kernels").glob(pattern)) == sorted(
            p.name for p in (ROOT / "kernels").glob(pattern)
        )

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # the fallback is what a machine without a GPU sees
    probe = f"SITE = {str(site)!r}; ROOT = {str(ROOT)!r}\n{PROBE}"
    run = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    *log, result = run.stdout.strip().splitlines()
    got = json.loads(result)
    assert got["speechkit"] == str(site / "speechkit/__init__.py")
    assert got["kernels"] == str(site / "speechkit/kernels/__init__.py")
    assert not got["repo_on_path"]
    assert "speechkit.kernels.flash_attention" in got["modules"]
    assert got["calls"] == {"sdpa": 1} and got["finite"]
    assert "no CUDA device" in got["kernel_reason"]
    assert any("falling back to 'sdpa'" in line and "no CUDA device" in line for line in log)
