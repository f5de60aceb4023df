"""Depthwise conv1d on CPU: speechkit.nn.depthwise (time-major) vs torch's grouped conv1d.

    python tools/bench_depthwise.py [--batch 12] [--steps 41] [--channels 288] [--kernel 15]

Defaults are the shapes of the tiny phrasebook model's cgMLP convolution (a 20 s batch after 4x
subsampling). Prints the median of ``--repeats`` forward and forward+backward times of each, in
one process (interleaved), and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from speechkit.nn.depthwise import depthwise_conv1d


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--steps", type=int, default=41)
    p.add_argument("--channels", type=int, default=288)
    p.add_argument("--kernel", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, args.steps, args.channels, requires_grad=True)
    weight = torch.randn(args.channels, 1, args.kernel, requires_grad=True)
    bias = torch.randn(args.channels, requires_grad=True)
    grad = torch.randn(args.batch, args.steps, args.channels)
    pad = args.kernel // 2

    def torch_conv():
        out = F.conv1d(x.transpose(1, 2), weight, bias, padding=pad, groups=args.channels)
        return out.transpose(1, 2)

    def ours():
        return depthwise_conv1d(x, weight, bias)

    times = {name: ([], []) for name in ("conv1d", "depthwise_conv1d")}
    for _ in range(args.repeats):
        for name, fn in (("conv1d", torch_conv), ("depthwise_conv1d", ours)):
            start = time.perf_counter()
            out = fn()
            mid = time.perf_counter()
            out.backward(grad)
            end = time.perf_counter()
            times[name][0].append(mid - start)
            times[name][1].append(end - start)
    med = {k: (statistics.median(f), statistics.median(fb)) for k, (f, fb) in times.items()}
    for name, (f, fb) in med.items():
        print(f"{name:>16}: forward {1e3 * f:.2f} ms, forward+backward {1e3 * fb:.2f} ms")
    ratio = med["conv1d"][1] / med["depthwise_conv1d"][1]
    print(f"forward+backward speed-up: {ratio:.2f}x "
          f"(B={args.batch}, T={args.steps}, C={args.channels}, K={args.kernel}, "
          f"{args.threads} threads, median of {args.repeats})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
