"""``x @ W.T + b`` for a few float32 rows against a weight stored in float16: the products of a
Whisper beam-search step on CPU, at half the bytes read.

Why: a search step multiplies 5 rows (the beams) by every decoder weight and by the 51,864 x D
token table. With so few rows each weight is read once per step and used 5 times, so the step
is bound by memory traffic, not arithmetic: whisper-base reads about 190 MB of float32 weights
per step. Whisper's released checkpoints (and the CTranslate2 files of the zoo) hold float16
weights, so storing them as float16 loses nothing; widening each one to float32 as it is loaded
(F16C) and doing every product and sum in float32 computes ``x @ W.T`` to float32 rounding while
reading half the bytes. No library the field uses does this on CPU: torch's and oneDNN's float16
CPU paths round the activations to float16 too (another result), and MKL's ``cblas_gemm_f16f16f32``
takes float16 inputs on both sides, so the kernel is written here (``half_linear.cpp``, AVX2 +
FMA + F16C). ``half_linear_ref`` is its reference in plain PyTorch; the test compares them.

Layout: ``pack_half`` turns a (V, D) weight into (NB, D, 16) float16 blocks, NB = ceil(V / 16),
block ``nb`` holding output rows 16 nb .. 16 nb + 15 column by column (rows past V are zeros), so
the kernel streams one 32-byte line per input channel and keeps 2 x rows accumulators in
registers. Rows are processed in groups of 6; each group reads the weight again, so callers send
only a few rows (``speechkit.nn.linear.HALF_ROWS``).

``block_linear`` runs the same loop over float32 blocks (``pack_blocks``, no rounding) for N
weights at once; ``blocked_attention`` uses it for a search step's cross-attention, whose keys
and transposed values ``pack_kv`` packs once per utterance (sdpa reads them in tiles, about 1.8x
slower for 5 queries over 1,500 frames with cold caches).

The kernel is compiled on first use with the C++ compiler that PyTorch's extension builder finds
(``torch.utils.cpp_extension.load`` in a child interpreter, ninja from PyPI; about 10 s, once
per machine: the build is cached in ``build_directory()``, under ``TORCH_EXTENSIONS_DIR``,
default ``~/.cache/torch_extensions``; later processes only load it). Where it cannot
run (no x86-64 CPU with AVX2, no compiler) ``kernel_available()`` is False, saying why once in the
log, and callers use float32 weights.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = [
    "BLOCK",
    "block_linear",
    "block_linear_ref",
    "blocked_attention",
    "blocked_attention_ref",
    "half_linear",
    "half_linear_ref",
    "kernel_available",
    "pack_blocks",
    "pack_kv",
    "pack_half",
    "unpack_blocks",
    "unpack_half",
]

BLOCK = 16  # output channels per packed block (half_linear.cpp: kBlock)


def pack_half(weight: Tensor) -> Tensor:
    """(V, D) float weight -> (ceil(V / 16), D, 16) float16 blocks (see the module docstring).
    Values are rounded to float16: exact only for weights that are float16 values. Written
    straight into the blocks, with no full-size temporary (the token table is 80-106 MB)."""
    v, d = weight.shape
    w = weight.detach()
    full, tail = divmod(v, BLOCK)
    packed = w.new_zeros(full + (tail > 0), d, BLOCK, dtype=torch.float16)
    packed[:full].copy_(w[: full * BLOCK].view(full, BLOCK, d).transpose(1, 2))
    if tail:
        packed[full, :, :tail].copy_(w[full * BLOCK :].t())
    return packed


def unpack_half(packed: Tensor, v: int) -> Tensor:
    """(NB, D, 16) float16 blocks -> the (v, D) float32 weight they hold (exact)."""
    nb, d, _ = packed.shape
    return packed.transpose(1, 2).reshape(nb * BLOCK, d)[:v].float()


def half_linear_ref(x: Tensor, packed: Tensor, bias: Tensor | None, v: int) -> Tensor:
    """Reference: (R, D) float32 rows -> (R, v) ``x @ W.T + bias`` in float32 PyTorch."""
    out = x @ unpack_half(packed, v).t()
    return out if bias is None else out + bias


def half_linear(x: Tensor, packed: Tensor, bias: Tensor | None, v: int) -> Tensor:
    """The kernel: (R, D) float32 CPU rows -> (R, v) float32, as ``half_linear_ref``. Check
    ``kernel_available()`` first."""
    return torch.ops.speechkit_cpu.half_linear(x, packed, bias, v)


def pack_blocks(weight: Tensor) -> Tensor:
    """(..., V, D) float32 -> (..., ceil(V / 16), D, 16) float32 blocks, the layout of
    ``pack_half`` without rounding (zeros past V); exact."""
    *lead, v, d = weight.shape
    full, tail = divmod(v, BLOCK)
    packed = weight.new_zeros(*lead, full + (tail > 0), d, BLOCK)
    body = weight[..., : full * BLOCK, :].reshape(*lead, full, BLOCK, d)
    packed[..., :full, :, :].copy_(body.transpose(-1, -2))
    if tail:
        packed[..., full, :, :tail].copy_(weight[..., full * BLOCK :, :].transpose(-1, -2))
    return packed


def unpack_blocks(packed: Tensor, v: int) -> Tensor:
    """(..., NB, D, 16) blocks -> the (..., v, D) weight they hold."""
    *lead, nb, d, _ = packed.shape
    return packed.transpose(-1, -2).reshape(*lead, nb * BLOCK, d)[..., :v, :]


def block_linear_ref(x: Tensor, packed: Tensor, v: int) -> Tensor:
    """Reference: x (N, R, D) and N packed float32 weights -> (N, R, v) ``x[n] @ W[n].T``."""
    return x @ unpack_blocks(packed, v).transpose(-1, -2)


def block_linear(x: Tensor, packed: Tensor, v: int) -> Tensor:
    """The kernel: as ``block_linear_ref`` for float32 CPU tensors. Check
    ``kernel_available()`` first."""
    return torch.ops.speechkit_cpu.block_linear(x, packed, v)


def pack_kv(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Attention keys and values (U, H, S, Dh) -> blocked (U, H, ceil(S / 16), Dh, 16) keys and
    (U, H, ceil(Dh / 16), S, 16) transposed values, for ``blocked_attention``. A search step
    attends from a few queries (the beams) over the same S encoder frames at every step; packed
    once per utterance, each step reads them as one stream per head instead of sdpa's tiles
    (``egs/phrasebook/whisper1/RESULTS.md``, "tenth session")."""
    return pack_blocks(k), pack_blocks(v.transpose(-1, -2))


def blocked_attention_ref(q: Tensor, kp: Tensor, vp: Tensor) -> Tensor:
    """Reference: softmax(q K^T / sqrt(Dh)) V for q (U, H, L, Dh) and ``pack_kv``'s blocks."""
    s, dh = vp.shape[-2], q.shape[-1]
    scores = q @ unpack_blocks(kp, s).transpose(-1, -2) * dh**-0.5
    return scores.softmax(-1) @ unpack_blocks(vp, dh).transpose(-1, -2)


def blocked_attention(q: Tensor, kp: Tensor, vp: Tensor) -> Tensor:
    """The kernel's attention: q (U, H, L, Dh) float32 CPU queries over ``pack_kv``'s blocks
    -> (U, H, L, Dh), as ``blocked_attention_ref``. No mask: every key is attended to."""
    u, h, length, dh = q.shape
    s = vp.shape[-2]
    kp, vp = kp.flatten(0, 1), vp.flatten(0, 1)
    scores = block_linear(q.reshape(u * h, length, dh), kp, s)  # (U H, L, S)
    probs = (scores * dh**-0.5).softmax(-1)
    return block_linear(probs, vp, dh).view(u, h, length, dh)


@functools.cache
def kernel_available() -> bool:
    """True when the CPU kernel runs here: an x86-64 CPU with AVX2 (PyTorch's own dispatch
    level; every such CPU has FMA and F16C) and a build that compiles and loads."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        logger.info(
            "half_linear: no kernel for %s CPUs; float32 weights are used", platform.machine()
        )
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        logger.info("half_linear: the CPU has no AVX2; float32 weights are used")
        return False
    try:
        _build()
    except Exception as err:  # no compiler, no ninja, a failed build: say so, run float32
        logger.warning("half_linear: the CPU kernel could not be built (%s); float32 weights "
                       "are used", str(err).strip().splitlines()[-1] if str(err) else type(err).__name__)  # fmt: skip
        return False
    return True


NAME = "speechkit_half_linear"
SOURCE = Path(__file__).with_name("half_linear.cpp")
CFLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"]
LDFLAGS = ["-fopenmp"]

# Run in a child interpreter: torch's extension builder imports setuptools, which refuses to load
# into a process that imported the standard library's distutils first (Python 3.11; some
# libraries and test suites do), and it need not sit in the memory of every transcription.
_CHILD_BUILD = """
import sys
from torch.utils.cpp_extension import load
load(name=sys.argv[1], sources=[sys.argv[2]], build_directory=sys.argv[3],
     extra_cflags=sys.argv[4].split(), extra_ldflags=sys.argv[5].split(),
     is_python_module=False, verbose=False)
"""


def build_directory() -> Path:
    """Where the built library lives: ``TORCH_EXTENSIONS_DIR`` (default
    ``~/.cache/torch_extensions``) / a name that changes with the source, the flags and torch."""
    key = hashlib.sha256(
        "\0".join([SOURCE.read_text(), *CFLAGS, *LDFLAGS, torch.__version__]).encode()
    ).hexdigest()[:12]
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root) / f"{NAME}_{key}"


def _build() -> None:
    """Loads the kernel into this process, building it first (in a child process) when no
    finished build is cached. Raises with the build's own message when it fails."""
    if hasattr(torch.ops.speechkit_cpu, "half_linear"):
        return
    build = build_directory()
    library, done = build / f"{NAME}.so", build / "built"
    if not done.is_file():  # the marker comes after a whole build: never load a half-written one
        build.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        env = dict(os.environ)
        # ninja from PyPI sits beside this interpreter; a script run without activating the
        # virtual environment has no such directory on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        run = subprocess.run(
            [sys.executable, "-c", _CHILD_BUILD, NAME, str(SOURCE), str(build), " ".join(CFLAGS),
             " ".join(LDFLAGS)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if run.returncode != 0 or not library.is_file():
            raise RuntimeError(f"building {SOURCE.name} failed:\n{run.stderr.strip()[-2000:]}")
        done.touch()
        logger.info("half_linear: CPU kernel built in %.0f s (cached in %s)",
                    time.perf_counter() - start, build)  # fmt: skip
    torch.ops.load_library(str(library))
