"""Benchmark the Triton flash-attention kernel against PyTorch SDPA on padded encoder batches.

Two tables:

1. Attention alone at head dim 64 (bfloat16), padded lengths 500..3000: TFLOP/s of forward and
   forward+backward for ``triton`` (lengths, padded blocks skipped), SDPA's flash backend (which
   takes no mask, so it computes the padding too), and SDPA's memory-efficient and cuDNN backends
   with the boolean key mask. Only useful FLOPs count: ``sum_i 4 * L_i^2 * d * heads`` for the
   forward over the valid lengths ``L_i``, 2.5x that for forward+backward.
2. One training step (forward, backward, AdamW) of the S2T encoder of
   ``conf/s2t/owsm_v3.1_base.yaml`` with each attention backend (bf16 autocast, attention dropout
   off for all, since the kernel has none).

Lengths in a batch are drawn from a log-normal (long-tailed, like a real corpus's durations) and
one utterance is the batch maximum. Usage (GPU)::

    python tools/bench_attention.py --results kernels/RESULTS.md
    python tools/bench_attention.py --smoke   # no GPU: tiny shapes under Triton's interpreter

``--results`` appends the tables, with date, device and command, to that markdown file.
"""

from __future__ import annotations

import argparse
import datetime
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
        default=[500, 1000, 1500, 2000, 3000],
        help="padded (maximum) sequence lengths, one row each",
    )
    p.add_argument(
        "--tokens",
        type=int,
        default=32768,
        help="padded tokens per batch: batch size = tokens // length",
    )
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--head-dim", type=int, default=64)
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
    p.add_argument("--seed", type=int, default=0)
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


def time_ms(fn, device: torch.device, reps: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after warm-up (autotuning happens there)."""
    for _ in range(3):
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
    """name -> fn(q, k, v, lens, mask) for every backend to measure."""
    from speechkit.kernels import flash_attention

    blocks = (16, 32) if smoke else None

    def triton_kernel(q, k, v, lens, mask):
        return flash_attention(q, k, v, lens, lens, block_sizes=blocks)

    backends = {"triton": triton_kernel}
    if smoke:
        return backends
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    def with_backend(kind, use_mask):
        def run(q, k, v, lens, mask):
            with sdpa_kernel(kind):
                return sdpa(q, k, v, attn_mask=mask if use_mask else None)

        return run

    backends["sdpa flash (no mask)"] = with_backend(SDPBackend.FLASH_ATTENTION, False)
    backends["sdpa efficient (mask)"] = with_backend(SDPBackend.EFFICIENT_ATTENTION, True)
    backends["sdpa cuDNN (mask)"] = with_backend(SDPBackend.CUDNN_ATTENTION, True)
    return backends


def _fwd_and_bwd_ms(fn, qkv, lens, mask, reps: int) -> tuple[float, float]:
    """Median ms of ``fn`` forward, and of forward+backward, on fresh leaves of ``qkv``."""
    q, k, v = (t.detach().requires_grad_() for t in qkv)
    grad = torch.randn_like(q)
    fwd = time_ms(lambda: fn(q, k, v, lens, mask), q.device, reps)
    both = time_ms(lambda: fn(q, k, v, lens, mask).backward(grad), q.device, reps)
    return fwd, both


def bench_attention(args, device: torch.device, dtype: torch.dtype) -> list[str]:
    """Markdown rows: one per (length, backend) with fwd and fwd+bwd TFLOP/s."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    backends = attention_backends(args.smoke)
    jobs = [(n, name) for n in args.lengths for name in backends]
    batches = {}
    for max_len, name in tqdm(jobs, desc="attention", disable=args.smoke):
        if max_len not in batches:
            batch = max(1, args.tokens // max_len)
            lens = draw_lengths(batch, max_len, args.sigma, gen)
            shape = (batch, args.heads, max_len, args.head_dim)
            qkv = [torch.randn(shape, generator=gen).to(device, dtype) for _ in range(3)]
            mask = (torch.arange(max_len) < lens[:, None])[:, None, None, :].to(device)
            batches[max_len] = (lens, qkv, mask)
        lens, qkv, mask = batches[max_len]
        try:
            fwd, both = _fwd_and_bwd_ms(backends[name], qkv, lens.to(device), mask, args.reps)
        except RuntimeError as err:  # a backend that does not take these inputs
            rows.append(f"| {max_len} | {len(lens)} | {name} | n/a | n/a | {str(err)[:60]} |")
            continue
        flops = useful_flops(lens, args.heads, args.head_dim)
        fill = float(lens.sum()) / (len(lens) * max_len)
        rows.append(
            f"| {max_len} | {len(lens)} | {name} | {flops / fwd / 1e9:.1f} "
            f"| {2.5 * flops / both / 1e9:.1f} | valid {fill:.0%}, fwd {fwd:.2f} ms |"
        )
    return rows


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

    return time_ms(step, device, args.reps)


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


def render(args, attention_rows: list[str], encoder_rows: list[str]) -> str:
    lines = [
        f"Attention, head dim {args.head_dim}, {args.heads} heads, {args.dtype}, "
        f"~{args.tokens} padded tokens per batch, log-normal lengths (sigma {args.sigma}):",
        "",
        "| max length | batch | backend | fwd TFLOP/s | fwd+bwd TFLOP/s | notes |",
        "|---|---|---|---|---|---|",
        *attention_rows,
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
    if args.smoke:
        if args.results:
            sys.exit("--smoke timings mean nothing; leave out --results")
        # Must be set before triton is imported (its @jit functions are decorated at import).
        os.environ["TRITON_INTERPRET"] = "1"
        args.lengths, args.tokens, args.heads, args.head_dim = [37], 74, 2, 40
        args.encoder_frames, args.encoder_batch, args.reps = 61, 2, 1
        args.dtype, device, dtype = "float32", torch.device("cpu"), torch.float32
    else:
        if not torch.cuda.is_available():
            sys.exit(
                "bench_attention.py needs a CUDA GPU (none found). "
                "Run with --smoke for a tiny CPU check under Triton's interpreter."
            )
        args.reps = 10
        device, dtype = torch.device("cuda"), getattr(torch, args.dtype)
    attention_rows = bench_attention(args, device, dtype)
    encoder_rows = [] if args.skip_encoder else bench_encoder(args, device, dtype)
    table = render(args, attention_rows, encoder_rows)
    print(table)
    if args.results:
        name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        versions = f"torch {torch.__version__}, triton {_triton_version()}"
        command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
        stamp = datetime.date.today().isoformat()
        with args.results.open("a") as f:
            f.write(f"\n## {stamp}, {name} ({versions})\n\n`{command}`\n\n{table}")
    return 0


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "missing"
    return triton.__version__


if __name__ == "__main__":
    sys.exit(main())
