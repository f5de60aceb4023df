"""Benchmark the Triton flash-attention kernel against PyTorch SDPA and eager attention.

Two tables:

1. Attention alone (bfloat16), for each head dim (64 and 80: a power of two and one the kernel
   pads), each batch kind and each padded length 512..4096: TFLOP/s of forward and of
   forward+backward for ``triton`` (lengths: padded blocks skipped), ``sdpa`` as the model calls
   it (boolean key mask, PyTorch picks the kernel), SDPA's flash backend (it takes no mask, so it
   computes the padding too), its memory-efficient and cuDNN backends (key mask), and ``eager``
   (the float32 reference). Batch kinds: ``padded`` (log-normal lengths, long-tailed like a real
   corpus, one utterance at the maximum) and ``unpadded`` (every sequence at the maximum). Only
   useful FLOPs count: ``sum_i 4 * L_i^2 * d * heads`` for the forward over the valid lengths
   ``L_i``, 2.5x that for forward+backward.
2. One training step (forward, backward, AdamW) of the S2T encoder of
   ``conf/s2t/owsm_v3.1_base.yaml`` with each attention backend (bf16 autocast, attention dropout
   off for all, since the kernel has none).

Usage (GPU)::

    python tools/bench_attention.py --results kernels/RESULTS.md
    python tools/bench_attention.py --jsonl out/bench_attention.jsonl --skip-encoder
    python tools/bench_attention.py --smoke   # no GPU: tiny shapes under Triton's interpreter

``--jsonl`` appends one JSON object per measured row as soon as it is measured (a run cut short
by a time limit keeps what it measured); ``--results`` appends the tables, with date, device and
command, to that markdown file at the end. Rows run head dim by head dim, padded batches first,
so a time limit cuts the least important rows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        default=[512, 1024, 2048, 4096],
        help="padded (maximum) sequence lengths, one row each",
    )
    p.add_argument(
        "--tokens",
        type=int,
        default=32768,
        help="padded tokens per batch: batch size = tokens // length",
    )
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dims", type=int, nargs="+", default=[64, 80])
    p.add_argument(
        "--batch-kinds",
        nargs="+",
        choices=["padded", "unpadded"],
        default=["padded", "unpadded"],
        help="padded: log-normal lengths; unpadded: every sequence at the maximum",
    )
    p.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    p.add_argument("--sigma", type=float, default=0.6, help="log-normal spread of the lengths")
    p.add_argument("--config", type=Path, default=ROOT / "conf/s2t/owsm_v3.1_base.yaml")
    p.add_argument(
        "--encoder-frames",
        type=int,
        default=3000,
        help="longest input of the encoder step, in 10 ms frames (30 s)",
    )
    p.add_argument("--encoder-batch", type=int, default=16)
    p.add_argument("--skip-encoder", action="store_true")
    p.add_argument("--results", type=Path, help="append the tables to this markdown file")
    p.add_argument("--jsonl", type=Path, help="append each row, as measured, to this file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the rows it would measure and stop before touching a GPU",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="no GPU needed: tiny shapes on CPU under TRITON_INTERPRET=1; "
        "checks that everything runs, its timings mean nothing",
    )
    return p.parse_args(argv)  # fmt: skip


def draw_lengths(batch: int, max_len: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """(batch,) int64 lengths in [max_len / 10, max_len], long-tailed; the first is max_len."""
    median = 0.45 * max_len
    z = torch.randn(batch, generator=gen)
    lens = (median * torch.exp(sigma * z)).round().clamp(max(1, max_len // 10), max_len)
    lens[0] = max_len
    return lens.long()


def useful_flops(lens: torch.Tensor, heads: int, dim: int) -> float:
    """Forward FLOPs of attention over the valid lengths only: sum_i 4 L_i^2 d heads."""
    return float((4 * lens.double() ** 2 * dim * heads).sum())


def time_ms(fn, device: torch.device, reps: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, after warm-up (autotuning happens there)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def attention_backends(smoke: bool) -> dict:
    """name -> fn(q, k, v, lens, mask) for every backend to measure (those that run on CPU when
    ``smoke``)."""
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from speechkit.kernels import flash_attention
    from speechkit.nn.attention import scaled_dot_product

    blocks = (16, 32) if smoke else None

    def triton_kernel(q, k, v, lens, mask):
        return flash_attention(q, k, v, lens, lens, block_sizes=blocks)

    backends = {
        "triton": triton_kernel,
        "sdpa (mask)": lambda q, k, v, lens, mask: sdpa(q, k, v, attn_mask=mask),
        "eager": lambda q, k, v, lens, mask: scaled_dot_product(q, k, v, mask, "eager"),
    }
    if smoke:
        return backends
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def with_backend(kind, use_mask):
        def run(q, k, v, lens, mask):
            with sdpa_kernel(kind):
                return sdpa(q, k, v, attn_mask=mask if use_mask else None)

        return run

    backends["sdpa flash (no mask)"] = with_backend(SDPBackend.FLASH_ATTENTION, False)
    backends["sdpa efficient (mask)"] = with_backend(SDPBackend.EFFICIENT_ATTENTION, True)
    backends["sdpa cuDNN (mask)"] = with_backend(SDPBackend.CUDNN_ATTENTION, True)
    return backends


def _fwd_and_bwd_ms(fn, qkv, lens, mask, reps: int, warmup: int) -> tuple[float, float]:
    """Median ms of ``fn`` forward, and of forward+backward, on fresh leaves of ``qkv``."""
    q, k, v = (t.detach().requires_grad_() for t in qkv)
    grad = torch.randn_like(q)
    fwd = time_ms(lambda: fn(q, k, v, lens, mask), q.device, reps, warmup)
    both = time_ms(lambda: fn(q, k, v, lens, mask).backward(grad), q.device, reps, warmup)
    return fwd, both


def _batch(args, kind: str, max_len: int, head_dim: int, gen, device, dtype):
    """(lens (B,), [q, k, v] (B, H, max_len, head_dim), key mask (B, 1, 1, max_len))."""
    batch = max(1, args.tokens // max_len)
    if kind == "padded":
        lens = draw_lengths(batch, max_len, args.sigma, gen)
    else:
        lens = torch.full((batch,), max_len, dtype=torch.long)
    shape = (batch, args.heads, max_len, head_dim)
    qkv = [torch.randn(shape, generator=gen).to(device, dtype) for _ in range(3)]
    mask = (torch.arange(max_len) < lens[:, None])[:, None, None, :].to(device)
    return lens, qkv, mask


def bench_attention(args, device: torch.device, dtype: torch.dtype, emit) -> list[dict]:
    """One row per (head dim, batch kind, length, backend): fwd and fwd+bwd TFLOP/s.

    ``emit(row)`` is called as each row is measured."""
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    backends = attention_backends(args.smoke)
    shapes = [(d, b, n) for d in args.head_dims for b in args.batch_kinds for n in args.lengths]
    for head_dim, kind, max_len in shapes:
        lens, qkv, mask = _batch(args, kind, max_len, head_dim, gen, device, dtype)
        flops = useful_flops(lens, args.heads, head_dim)
        for name, fn in backends.items():
            row = {
                "head_dim": head_dim,
                "batch_kind": kind,
                "max_len": max_len,
                "batch": len(lens),
                "valid": float(lens.sum()) / (len(lens) * max_len),
                "backend": name,
                "dtype": args.dtype,
            }
            try:
                fwd, both = _fwd_and_bwd_ms(fn, qkv, lens.to(device), mask, args.reps, args.warmup)
            except RuntimeError as err:  # a backend that does not take these inputs
                row.update(error=str(err).splitlines()[0][:120])
            else:
                row.update(
                    fwd_ms=fwd,
                    fwd_bwd_ms=both,
                    fwd_tflops=flops / fwd / 1e9,
                    fwd_bwd_tflops=2.5 * flops / both / 1e9,
                )
            if device.type == "cuda":
                torch.cuda.empty_cache()  # eager's score matrices must not crowd out the next
            rows.append(row)
            emit(row)
    return rows


def attention_table_row(row: dict) -> str:
    """The markdown row of one measurement."""
    head = (
        f"| {row['head_dim']} | {row['batch_kind']} | {row['max_len']} | {row['batch']} "
        f"| {row['backend']} |"
    )
    if "error" in row:
        return f"{head} n/a | n/a | {row['error'][:60]} |"
    return (
        f"{head} {row['fwd_tflops']:.1f} | {row['fwd_bwd_tflops']:.1f} "
        f"| valid {row['valid']:.0%}, fwd {row['fwd_ms']:.2f} ms |"
    )


def _encoder_step_ms(cfg, backend: str, feats, feat_lens, dtype, args) -> float:
    """Median ms of one encoder training step (forward, backward, AdamW) with ``backend``."""
    from speechkit.models.s2t import S2TModel

    device = feats.device
    torch.manual_seed(args.seed)
    model = S2TModel(cfg).to(device).train()
    model.set_attention_backend(backend)
    opt = torch.optim.AdamW(model.encoder.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            enc, _ = model.encode(feats, feat_lens)
            loss = enc.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return time_ms(step, device, args.reps, args.warmup)


def bench_encoder(args, device: torch.device, dtype: torch.dtype) -> list[str]:
    """Markdown rows: ms per encoder training step for each attention backend."""
    import yaml

    from speechkit.config import from_dict
    from speechkit.models.s2t import S2TConfig

    model_cfg = yaml.safe_load(args.config.read_text())["model"]
    model_cfg.update(vocab_size=1000, attention_dropout=0.0)
    if args.smoke:  # a toy encoder: the point is only that the step runs
        model_cfg.update(d_model=32, n_heads=2, encoder_layers=1, encoder_ffn=64, cgmlp_units=64)
    cfg = from_dict(S2TConfig, model_cfg, str(args.config))
    gen = torch.Generator().manual_seed(args.seed)
    feat_lens = draw_lengths(args.encoder_batch, args.encoder_frames, args.sigma, gen)
    feats = torch.randn(args.encoder_batch, args.encoder_frames, cfg.n_mels, generator=gen)
    feats, feat_lens = feats.to(device), feat_lens.to(device)
    rows, base = [], None
    for backend in ("sdpa", "eager", "triton"):
        ms = _encoder_step_ms(cfg, backend, feats, feat_lens, dtype, args)
        base = base or ms
        rows.append(f"| {backend} | {args.encoder_batch} | {ms:.1f} | {base / ms:.2f}x |")
    return rows


def render(args, attention_rows: list[dict], encoder_rows: list[str]) -> str:
    lines = [
        f"Attention, {args.heads} heads, {args.dtype}, ~{args.tokens} padded tokens per batch; "
        f"padded batches: log-normal lengths (sigma {args.sigma}):",
        "",
        "| head dim | batch | max length | batch size | backend | fwd TFLOP/s | fwd+bwd TFLOP/s "
        "| notes |",
        "|---|---|---|---|---|---|---|---|",
        *map(attention_table_row, attention_rows),
    ]
    if encoder_rows:
        lines += [
            "",
            f"Encoder training step ({args.config.name}, up to {args.encoder_frames} frames):",
            "",
            "| backend | batch | ms / step | speed-up vs sdpa |",
            "|---|---|---|---|",
            *encoder_rows,
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        backends = attention_backends(smoke=False)  # imports what the real run needs
        shapes = [(d, b, n) for d in args.head_dims for b in args.batch_kinds for n in args.lengths]
        for head_dim, kind, max_len in shapes:
            print(f"planned: head dim {head_dim}, {kind}, length {max_len}: {', '.join(backends)}")
        print(f"dry run: {len(shapes) * len(backends)} attention rows planned")
        return 0
    if args.smoke:
        if args.results:
            sys.exit("--smoke timings mean nothing; leave out --results")
        # Must be set before triton is imported (its @jit functions are decorated at import).
        os.environ["TRITON_INTERPRET"] = "1"
        args.lengths, args.tokens, args.heads, args.head_dims = [37], 74, 2, [40]
        args.encoder_frames, args.encoder_batch, args.reps, args.warmup = 61, 2, 1, 1
        args.dtype, device, dtype = "float32", torch.device("cpu"), torch.float32
    else:
        if not torch.cuda.is_available():
            sys.exit(
                "bench_attention.py needs a CUDA GPU (none found). "
                "Run with --smoke for a tiny CPU check under Triton's interpreter."
            )
        args.reps, args.warmup = 10, 3  # the warm-up calls autotune the kernel
        device, dtype = torch.device("cuda"), getattr(torch, args.dtype)

    def emit(row: dict) -> None:
        print(attention_table_row(row), flush=True)
        if args.jsonl is not None:
            with args.jsonl.open("a") as f:  # one line per row, on disk at once
                f.write(json.dumps({"device": _device_name(device), **row}) + "\n")

    attention_rows = bench_attention(args, device, dtype, emit)
    encoder_rows = [] if args.skip_encoder else bench_encoder(args, device, dtype)
    table = render(args, attention_rows, encoder_rows)
    print(table)
    if args.results:
        name = _device_name(device)
        versions = f"torch {torch.__version__}, triton {_triton_version()}"
        command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
        stamp = datetime.date.today().isoformat()
        with args.results.open("a") as f:
            f.write(f"\n## {stamp}, {name} ({versions})\n\n`{command}`\n\n{table}")
    return 0


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "missing"
    return triton.__version__


if __name__ == "__main__":
    sys.exit(main())
