"""Gated (pruned) vs full model: decoding speed at batch 1 and batched, interleaved.

    speechkit bench prune --gated exp/prune_dyn/model_avg.pt --full exp/prune_full/model_avg.pt \\
        --budget 0.5 --cuts data/cuts_test_seen.jsonl.gz [--contexts data/contexts] \\
        [--tasks asr] [--max-utts 60] [--beam-size 1] [--threads 1] [--results-md RESULTS.md]

Inputs as ``speechkit decode`` reads them (``--cuts``, or ``--wav-scp`` / audio files with
``--text`` and ``--language``), so any corpus with references works. ``--gated``: a gated model
(``task: prune``), decoded at ``--budget``; ``--full``: any s2t model (the full fine-tune, or a
model exported by ``speechkit prune-export``) or a gated model (then at ``--full-budget``,
default 1.0). Both are decoded through ``speechkit.bin.decode.decode_items``, the code path of
``speechkit decode``, with the same options.

Interleaving: features are computed once, outside the clock; then per utterance (batch 1) and
per batch of ``--batch-duration`` seconds (batched) the two models run back to back, the order
alternating, so that both see the same machine state. Reported: RTFx (audio seconds / wall
seconds) of each at batch 1 and batched, the median over utterances (batches) of the per-item
speed-up, the ratio of total times, and the gated model's mean GFLOPs (encoder / decoder) and
sparsity. At batch 1 each model's encoding is also timed alone (an extra, separate call per
utterance), giving the encoder's share of its batch-1 time; the search (decoder steps and beam
bookkeeping) is the rest. GFLOPs saved are not time saved: this is the figure to quote for speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from speechkit.bench import add_cite_argument, write_section

TITLE = "Pruned vs full model: decoding speed (interleaved)"
logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("files", nargs="*", help="audio files")
    p.add_argument("--gated", required=True, help="gated model (checkpoint, packed dir, zoo name)")
    p.add_argument("--full", required=True, help="the model to compare with")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--full-budget", type=float, default=1.0, help="if --full is gated too")
    p.add_argument("--contexts", default=None, help="stored contexts of the gated model")
    p.add_argument("--language-context", default="lid", choices=("lid", "oracle"))
    p.add_argument("--cuts")
    p.add_argument("--wav-scp")
    p.add_argument("--allow-pipes", action="store_true")
    p.add_argument("--text")
    p.add_argument("--language")
    p.add_argument("--languages", help="only cuts spoken in these (comma list)")
    p.add_argument("--tasks", default="asr", help="as speechkit decode --tasks")
    p.add_argument("--max-utts", type=int, default=60)
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--batch-duration", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results-md", type=Path)
    add_cite_argument(p)
    return p.parse_args(argv)


class _System:
    """A loaded model with its gating and decode options; ``__call__`` decodes one batch."""

    def __init__(self, name: str, model: str, budget: float, args):
        from speechkit import zoo
        from speechkit.bin import decode as decode_bin

        self.name, self.decode_bin = name, decode_bin
        self.pre = zoo.load(model)
        ns = argparse.Namespace(**{**vars(args), "budget": budget, "model": model,
                                   "ctc_weight": 0.0, "ctc_top_k": 20, "length_penalty": 0.0,
                                   "no_length_norm": False, "max_len": None,
                                   "max_len_ratio": 1.0})  # fmt: skip
        if self.pre.model_type != "gated_s2t":
            ns.budget = None
        self.gating = decode_bin.make_gating(self.pre, ns)
        self.opts = decode_bin.options_from_args(ns, self.pre.config.max_target_positions, 4)

    def __call__(self, feats, feat_lens, items) -> float:
        start = time.perf_counter()
        self.decode_bin.decode_items(self.pre, feats, feat_lens, items, self.opts, "cpu",
                                     "none", self.gating)  # fmt: skip
        return time.perf_counter() - start

    def encode(self, feats, feat_lens, items) -> float:
        """Seconds to encode the batch alone (as ``decode_items`` does first)."""
        start = time.perf_counter()
        if self.gating is None:
            self.pre.model.encode(feats, feat_lens)
        else:
            rows = {it.index: it for it in items}
            rows = [rows[b] for b in range(feats.shape[0])]
            self.gating.encode(feats, feat_lens, [it.cut_id for it in rows],
                               [it.lang for it in rows])  # fmt: skip
        return time.perf_counter() - start


def _batches(cut_groups, systems, args) -> list[tuple[float, object, object, list]]:
    """(audio seconds, feats, feat_lens, items) per group of cuts (features computed once)."""
    from speechkit.bin import decode as decode_bin
    from speechkit.data import LogMel

    pre = systems[0].pre
    logmel = LogMel(pre.features)
    out = []
    for group, items_of in cut_groups:
        ok, feats, lens = decode_bin.load_features(group, logmel, pre.features.sample_rate, [])
        if feats is None:
            continue
        items = [
            dataclasses.replace(it, index=i) for i, c in enumerate(ok) for it in items_of[c.id]
        ]
        out.append((sum(c.duration for c in ok), feats, lens, items))
    return out


def measure(systems, batches, desc: str, encoder: bool = False) -> dict:
    """Interleaved timing; the order of the two systems alternates per batch. ``encoder``:
    time each system's encoding alone too (``enc_share_<name>``: its share of the total)."""
    times = {s.name: [] for s in systems}
    enc = {s.name: [] for s in systems}
    for i, (_, feats, lens, items) in enumerate(tqdm(batches, desc=desc)):
        order = systems if i % 2 == 0 else systems[::-1]
        for s in order:
            times[s.name].append(s(feats, lens, items))
            if encoder:
                enc[s.name].append(s.encode(feats, lens, items))
    audio = sum(b[0] for b in batches)
    gated, full = times["gated"], times["full"]
    shares = {f"enc_share_{n}": sum(enc[n]) / sum(times[n]) for n in times if enc[n]}
    return {
        **shares,
        "rtfx_gated": audio / sum(gated),
        "rtfx_full": audio / sum(full),
        "speedup_median": statistics.median(f / g for f, g in zip(full, gated)),
        "speedup_total": sum(full) / sum(gated),
        "items": len(batches),
    }


def run(args: argparse.Namespace) -> dict:
    from speechkit.bin import decode as decode_bin

    torch.set_num_threads(args.threads)
    systems = [_System("gated", args.gated, args.budget, args),
               _System("full", args.full, args.full_budget, args)]  # fmt: skip
    if systems[0].gating is None:
        raise SystemExit(f"--gated {args.gated}: not a gated model (task: prune)")
    if systems[0].pre.features != systems[1].pre.features:
        raise SystemExit("the two models read different features: they cannot share inputs")
    tok = systems[0].pre.tokenizer
    cuts = decode_bin.load_cuts(args, tok, [])
    tasks = None if args.tasks == "auto" else args.tasks.split(",")
    plan = decode_bin.plan_items(cuts, tasks, systems[0].pre, 0)
    items_of = {cut.id: items for cut, items in plan}
    singles = _batches([([cut], items_of) for cut, _ in plan], systems, args)
    grouped = decode_bin.make_batches([cut for cut, _ in plan], args.batch_duration)
    batched = _batches([(group, items_of) for group in grouped], systems, args)
    with torch.inference_mode():
        for s in systems:  # warm-up (allocator, kernels): not timed
            s(*singles[0][1:])
        systems[0].gating.records.clear()
        one = measure(systems, singles, "batch 1", encoder=True)
        gates = systems[0].gating.summary()
        many = measure(systems, batched, "batched")
    return {"batch1": one, "batched": many, "gates": gates, "utterances": len(singles)}


def report(res: dict, args, argv: list[str]) -> list[str]:
    g = res["gates"]
    lines = [
        "| setting | RTFx gated | RTFx full | speed-up (median per item) | speed-up (total) |",
        "|---|---|---|---|---|",
    ]
    for name in ("batch1", "batched"):
        r = res[name]
        label = "batch 1" if name == "batch1" else f"batched ({args.batch_duration:g} s)"
        lines.append(f"| {label} ({r['items']} runs) | {r['rtfx_gated']:.1f} | {r['rtfx_full']:.1f}"
                     f" | {r['speedup_median']:.2f}x | {r['speedup_total']:.2f}x |")  # fmt: skip
    one = res["batch1"]
    lines += [
        "",
        f"Encoder alone at batch 1: {one['enc_share_gated']:.0%} of the gated model's time, "
        f"{one['enc_share_full']:.0%} of the full model's (the search, decoder steps included, "
        "is the rest).",
        f"Gated model at budget {g['budget']}: GFLOPs per item {g['gflops_enc']:.3f} (encoder) / "
        f"{g['gflops_dec']:.3f} (decoder) of {g['gflops_full']:.3f} full; sparsity "
        f"{g['sparsity']:.1%}; {g['gate_patterns']} distinct gate patterns over {g['items']} items.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    res = run(args)
    lines = report(res, args, argv)
    print("\n".join(lines))
    if args.results_md:
        write_section(args.results_md, TITLE, "prune", argv, args.cite_path, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
