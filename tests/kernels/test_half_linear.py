"""speechkit.kernels.half_linear: the CPU kernel against its PyTorch reference."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechkit.kernels import half_linear as hl

X86_AVX2 = platform.machine().lower() in ("x86_64", "amd64") and (
    torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
)
# Only the CPUs the kernel is written for; there the set-up installs the compiler that builds it.
pytestmark = pytest.mark.skipif(not X86_AVX2, reason="the kernel is for x86-64 CPUs with AVX2")


def _half_exact(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).half().float()


def test_the_kernel_builds_here():
    hl._build()  # raises the build's own error, which kernel_available() only logs
    assert hl.kernel_available()


def test_a_process_that_imported_distutils_first_builds_it(tmp_path):
    """The build runs in a child interpreter: setuptools (which torch's extension builder
    imports) refuses a process that imported the standard library's distutils first, as a long
    test run or another library may. A fresh extension directory forces a real build."""
    pytest.importorskip("distutils", reason="Python 3.12+ has no standard-library distutils")
    probe = (
        "import distutils.core\n"
        "import torch\n"
        "from speechkit.kernels import half_linear as hl\n"
        "hl._build()\n"
        "w, x = torch.randn(40, 8).half().float(), torch.randn(3, 8)\n"
        "assert torch.allclose(hl.half_linear(x, hl.pack_half(w), None, 40), x @ w.t(), atol=1e-5)\n"
        "print(hl.build_directory())\n"
    )
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    built = Path(run.stdout.strip().splitlines()[-1])
    assert built.parent == tmp_path and (built / "built").is_file()


@pytest.mark.parametrize("v, d", [(51, 20), (64, 48), (37, 7), (1, 3), (300, 96)])
@pytest.mark.parametrize("rows", [1, 2, 5, 6, 7, 13])
@pytest.mark.parametrize("bias", [True, False])
def test_kernel_matches_the_reference(v, d, rows, bias):
    """Any number of outputs (a partial last block), any width, rows past one group of 6."""
    torch.manual_seed(v * 100 + d + rows)
    w, x = _half_exact(v, d), torch.randn(rows, d)
    b = torch.randn(v) if bias else None
    packed = hl.pack_half(w)
    assert packed.shape == (-(-v // hl.BLOCK), d, hl.BLOCK) and packed.dtype == torch.float16
    ref = hl.half_linear_ref(x, packed, b, v)
    torch.testing.assert_close(ref, x @ w.t() + (0 if b is None else b), rtol=0, atol=0)
    out = hl.half_linear(x, packed, b, v)
    assert out.shape == (rows, v) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_strided_rows_and_threads():
    """A non-contiguous x is read as its values; one thread gives what two do."""
    w = _half_exact(200, 64)
    packed = hl.pack_half(w)
    x = torch.randn(64, 5).t()  # (5, 64), strided
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = hl.half_linear(x, packed, None, 200)
        torch.set_num_threads(2)
        two = hl.half_linear(x, packed, None, 200)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(one, x @ w.t(), rtol=1e-5, atol=1e-5)
    assert torch.equal(one, two)  # the same sums in the same order per output


def test_unpack_is_exact_and_packing_rounds():
    w = _half_exact(33, 10)
    assert torch.equal(hl.unpack_half(hl.pack_half(w), 33), w)
    fine = w + 1e-4  # not float16 values: pack_half rounds them
    assert not torch.equal(hl.unpack_half(hl.pack_half(fine), 33), fine)


def test_bad_inputs_are_refused():
    packed = hl.pack_half(_half_exact(40, 8))
    with pytest.raises(RuntimeError, match="channels"):
        hl.half_linear(torch.randn(2, 9), packed, None, 40)
    with pytest.raises(RuntimeError, match="outputs do not fit"):
        hl.half_linear(torch.randn(2, 8), packed, None, 60)
    with pytest.raises(RuntimeError, match="float32"):
        hl.half_linear(torch.randn(2, 8, dtype=torch.float64), packed, None, 40)
    with pytest.raises(RuntimeError, match="bias"):
        hl.half_linear(torch.randn(2, 8), packed, torch.randn(39), 40)


@pytest.mark.parametrize("n,rows,d,v", [(1, 1, 64, 1500), (8, 5, 64, 1500), (3, 7, 1500, 64),
                                        (2, 13, 20, 37), (5, 6, 9, 16)])  # fmt: skip
def test_block_linear_matches_the_reference(n, rows, d, v):
    """N float32 weights at once (a cross-attention's heads), any row count and a last block
    that is partly past V."""
    assert hl.kernel_available()
    torch.manual_seed(n * rows + v)
    w, x = torch.randn(n, v, d), torch.randn(n, rows, d)
    packed = hl.pack_blocks(w)
    assert packed.shape == (n, -(-v // hl.BLOCK), d, hl.BLOCK) and packed.dtype == torch.float32
    assert torch.equal(hl.unpack_blocks(packed, v), w)  # packing is exact
    ref = hl.block_linear_ref(x, packed, v)
    torch.testing.assert_close(ref, x @ w.transpose(1, 2), rtol=0, atol=0)
    out = hl.block_linear(x, packed, v)
    assert out.shape == (n, rows, v)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6 * d)  # sums of d products


@pytest.mark.parametrize("u,h,length,s,dh", [(1, 6, 5, 1500, 64), (2, 8, 10, 1500, 64),
                                             (3, 2, 13, 37, 20), (1, 1, 1, 1, 8)])  # fmt: skip
def test_blocked_attention_is_sdpa_over_packed_keys_and_values(u, h, length, s, dh):
    assert hl.kernel_available()
    torch.manual_seed(s + length)
    q, k, v = torch.randn(u, h, length, dh), torch.randn(u, h, s, dh), torch.randn(u, h, s, dh)
    kp, vp = hl.pack_kv(k, v)
    assert kp.shape == (u, h, -(-s // hl.BLOCK), dh, hl.BLOCK)
    assert vp.shape == (u, h, -(-dh // hl.BLOCK), s, hl.BLOCK)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(hl.blocked_attention_ref(q, kp, vp), expected)
    strided = q.transpose(1, 2).contiguous().transpose(1, 2)  # as attention's split heads
    torch.testing.assert_close(hl.blocked_attention(strided, kp, vp), expected)


def test_block_linear_refuses_bad_inputs():
    assert hl.kernel_available()
    packed = hl.pack_blocks(torch.randn(2, 40, 8))
    with pytest.raises(RuntimeError, match="channels"):
        hl.block_linear(torch.randn(2, 3, 9), packed, 40)
    with pytest.raises(RuntimeError, match="3 inputs, 2 weights"):
        hl.block_linear(torch.randn(3, 3, 8), packed, 40)
    with pytest.raises(RuntimeError, match="outputs do not fit"):
        hl.block_linear(torch.randn(2, 3, 8), packed, 60)
    with pytest.raises(RuntimeError, match="float32"):
        hl.block_linear(torch.randn(2, 3, 8), packed.half(), 40)
