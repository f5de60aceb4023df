"""The flash-attention kernel's forward and backward against its reference at odd shapes, on a GPU.

Compiled kernels at production tile sizes (the tests in tests/kernels run 16 x 32 tiles, and on
CPU only the interpreter): head dims that are not powers of two (40, 59, 80, 96, 111), lengths 1,
17, 1025 and 2049 (one row past a block), batches whose lengths differ by exactly one tile, in
bfloat16, float16 and float32. Each case writes one JSON line as soon as it is done::

    {"dtype", "head_dim", "length", "lens", "blocks", "errors": {out, dq, dk, dv},
     "torch_errors": {...}, "padding_zero", "ok", "seconds"}

Acceptance, as in tests/kernels: in float16/bfloat16 each error against a float32 reference is at
most twice PyTorch's own error in that precision (+1e-5); float32 within 1e-4 relative to the
reference's largest value; padded rows and keys exactly zero. Cases run in order of importance,
so a time limit cuts the least important. ``--dry-run`` writes the plan and stops before CUDA.

    python tools/gpu_check/kernel_shapes.py --out kernel_shapes.jsonl [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# (dtype, head dim, padded length, valid lengths of the batch, (BLOCK_M, BLOCK_N))
CASES = [
    ("bfloat16", 80, 1025, (1025, 961, 960), (64, 64)),
    ("bfloat16", 40, 1025, (1025, 961, 1), (64, 64)),
    ("bfloat16", 96, 2049, (2049, 1921, 0), (128, 64)),
    ("bfloat16", 64, 1, (1, 0), (64, 64)),
    ("bfloat16", 64, 17, (17, 16, 1), (64, 64)),
    ("float16", 80, 1025, (1025, 897), (128, 128)),
    ("float16", 111, 17, (17, 1), (64, 128)),
    ("bfloat16", 59, 513, (513, 449), (64, 128)),
    ("bfloat16", 128, 1025, (1025, 1024), (128, 64)),
    ("float32", 96, 1025, (1025, 961), (64, 64)),
    ("float32", 40, 17, (17, 16), (64, 64)),
]
HEADS = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="JSON lines, one per case")
    p.add_argument("--dry-run", action="store_true", help="write the plan, stop before CUDA")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _out_and_grads(fn, qkv, do, *args, **kw) -> list[torch.Tensor]:
    out = fn(*qkv, *args, **kw)
    return [out, *torch.autograd.grad(out, qkv, do)]


def run_case(case, seed: int, device: str = "cuda") -> dict:
    """Kernel vs float32 reference vs PyTorch in the same precision, forward and backward
    (``device="cpu"`` runs it under Triton's interpreter, for tests)."""
    from speechkit.kernels import flash_attention, flash_attention_ref, kernel_available

    dtype_name, dim, length, lens, blocks = case
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(seed)
    shape = (len(lens), HEADS, length, dim)
    qkv = [torch.randn(shape, generator=gen).to(device, dtype).requires_grad_() for _ in range(3)]
    do = torch.randn(shape, generator=gen).to(device, dtype)
    n = torch.tensor(lens, device=device)
    reason = kernel_available(qkv[0])
    if reason is not None:
        raise RuntimeError(f"the kernel cannot run: {reason}")
    start = time.perf_counter()
    got = _out_and_grads(flash_attention, qkv, do, n, n, block_sizes=blocks)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    qkv32 = [t.detach().float().requires_grad_() for t in qkv]
    ref = _out_and_grads(flash_attention_ref, qkv32, do.float(), n, n)
    lowp = _out_and_grads(flash_attention_ref, qkv, do, n, n, upcast=False)
    names = ("out", "dq", "dk", "dv")
    errors = {k: (a.float() - r).abs().max().item() for k, a, r in zip(names, got, ref)}
    torch_errors = {k: (a.float() - r).abs().max().item() for k, a, r in zip(names, lowp, ref)}
    if dtype == torch.float32:
        ok = all(errors[k] <= 1e-4 * max(1.0, r.abs().max().item()) for k, r in zip(names, ref))
    else:
        ok = all(errors[k] <= 2 * torch_errors[k] + 1e-5 for k in names)
    padding_zero = all(
        bool((t[b, :, valid:] == 0).all()) for t in got for b, valid in enumerate(lens)
    )
    return {
        "dtype": dtype_name,
        "head_dim": dim,
        "length": length,
        "lens": list(lens),
        "blocks": list(blocks),
        "errors": errors,
        "torch_errors": torch_errors,
        "padding_zero": padding_zero,
        "ok": ok and padding_zero,
        "seconds": round(seconds, 3),  # first call of a shape: includes compiling the kernels
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import speechkit.kernels  # noqa: F401  (fails here, not in the middle, if not installed)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        with args.out.open("w") as f:
            for dtype, dim, length, lens, blocks in CASES:
                plan = dict(dtype=dtype, head_dim=dim, length=length, lens=lens, blocks=blocks)
                f.write(json.dumps({"planned": True, **plan}) + "\n")
        print(f"dry run: {len(CASES)} cases planned in {args.out}")
        return 0
    if not torch.cuda.is_available():
        sys.exit("kernel_shapes.py needs a CUDA GPU (use --dry-run without one)")
    failed = 0
    for i, case in enumerate(CASES):
        try:
            row = run_case(case, args.seed + i)
        except Exception as err:  # one broken shape must not hide the others
            row = {"case": [str(c) for c in case], "ok": False, "error": repr(err)[:300]}
        failed += not row["ok"]
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    print(f"{len(CASES) - failed}/{len(CASES)} cases within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
