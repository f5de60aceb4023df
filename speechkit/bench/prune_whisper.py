"""Gated vs full Whisper model: WER and transcription speed at batch 1 and batched, interleaved.

    speechkit bench prune-whisper --gated exp/wprune_dyn/model_avg.pt \\
        --full exp/wprune_full/model_avg.pt --budget 0.5 \\
        (--cuts data/cuts_test_seen.jsonl.gz | --audio-dir DIR --text text) [--language eng] \\
        [--max-utts 60] [--beam 5] [--threads 2] [--batch-size 8] [--results-md RESULTS.md]

Any test set the Whisper benchmarks read (``speechkit.bench.testset``: a directory of audio with
a Kaldi reference list, or a cut manifest), so the figure is re-measured on speech the models
were not tuned to. ``--gated``: a ``gated_whisper`` model (``task: prune_whisper``) decoded at
``--budget``; ``--full``: any Whisper model (the full fine-tune), or a gated one at
``--full-budget`` (default 1.0). Both go through ``speechkit.inference.Transcriber``, the code
path of ``speechkit transcribe`` and ``speechkit decode``, with the same options.

Interleaving: per utterance (batch 1) and per ``--batch-size`` utterances (batched) the two
models run back to back, the order alternating; a warm-up call of each is not timed. Reported:
RTFx (audio seconds / wall seconds) of each, the median over calls of the per-call speed-up and
the ratio of total times, WER of each, and the gated model's decoder GFLOPs and sparsity per
window (analytic, ``decode/whisper.py``). The encoder is not gated: its share of the time is the
limit of the speed-up.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from speechkit.bench import add_cite_argument, testset, write_section

TITLE = "Gated vs full Whisper: WER and speed (interleaved)"
logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--gated", required=True, help="gated Whisper model (checkpoint, packed dir)")
    p.add_argument("--full", required=True, help="the Whisper model to compare with")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--full-budget", type=float, default=1.0, help="if --full is gated too")
    testset.add_arguments(p, max_utts=60)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="utterances per batched call")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results-md", type=Path)
    p.add_argument("--label", default="", help="added to the section title")
    add_cite_argument(p)
    return p.parse_args(argv)


def _transcriber(model: str, budget: float, args):
    from speechkit import zoo
    from speechkit.config import ConfigError
    from speechkit.inference import TranscribeOptions, Transcriber

    pre = zoo.load(model)
    if pre.model_type not in ("whisper", "gated_whisper"):
        raise SystemExit(f"{model}: a {pre.model_type} model, not a Whisper model")
    opts = TranscribeOptions(beam=args.beam, batch_size=args.batch_size, language=args.language)
    # a plain --full model ignores --full-budget; a gated one checks it as transcribe does
    gated = pre.model_type == "gated_whisper"
    try:
        return Transcriber(pre, opts, budget=budget if gated else None, name=model), pre.model_type
    except ConfigError as e:
        raise SystemExit(str(e)) from None


def measure(systems: dict, waves: list, chunk: int, desc: str) -> tuple[dict, dict]:
    """Interleaved timing of ``systems`` {name: transcriber} over ``waves`` in calls of
    ``chunk`` utterances; returns the figures and each system's hypotheses."""
    names = list(systems)
    times = {n: [] for n in names}
    hyps = {n: [] for n in names}
    calls = [waves[i : i + chunk] for i in range(0, len(waves), chunk)]
    for i, call in enumerate(tqdm(calls, desc=desc)):
        for name in names if i % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            out = systems[name](call)
            times[name].append(time.perf_counter() - start)
            hyps[name].extend(r.text for r in out)
    audio = sum(len(w) for w in waves) / testset.SAMPLE_RATE
    gated, full = times["gated"], times["full"]
    return {
        "rtfx_gated": audio / sum(gated),
        "rtfx_full": audio / sum(full),
        "speedup_median": statistics.median(f / g for f, g in zip(full, gated)),
        "speedup_total": sum(full) / sum(gated),
        "calls": len(calls),
    }, hyps


def run(args: argparse.Namespace) -> dict:
    from speechkit.metrics import wer

    torch.set_num_threads(args.threads)
    gated, gated_type = _transcriber(args.gated, args.budget, args)
    if gated_type != "gated_whisper":
        raise SystemExit(f"--gated {args.gated}: not a gated Whisper model (task: prune_whisper)")
    full, _ = _transcriber(args.full, args.full_budget, args)
    data = testset.from_args(args)
    systems = {"gated": gated, "full": full}
    with torch.inference_mode():
        for t in systems.values():  # warm-up: not timed
            t(data.waves[:1])
        gated.windows.gate_records.clear()
        one, hyps = measure(systems, data.waves, 1, "batch 1")
        gates = gated.windows.gate_summary()
        many, _ = measure(systems, data.waves, args.batch_size, "batched")
    return {
        "batch1": one,
        "batched": many,
        "gates": gates,
        "wer_gated": wer(data.refs, hyps["gated"]).rate,
        "wer_full": wer(data.refs, hyps["full"]).rate,
        "set": data.name,
        "utterances": len(data.waves),
        "seconds": data.seconds,
    }


def report(res: dict, args) -> list[str]:
    g = res["gates"]
    lines = [
        f"Test set: {res['set']}, {res['utterances']} utterances ({res['seconds']:.0f} s); beam "
        f"{args.beam}, {args.threads} threads. WER % gated {res['wer_gated']:.1f}, full "
        f"{res['wer_full']:.1f}.",
        "",
        "| setting | RTFx gated | RTFx full | speed-up (median per call) | speed-up (total) |",
        "|---|---|---|---|---|",
    ]
    for name in ("batch1", "batched"):
        r = res[name]
        label = "batch 1" if name == "batch1" else f"batched ({args.batch_size} utts)"
        lines.append(f"| {label} ({r['calls']} calls) | {r['rtfx_gated']:.1f} | "
                     f"{r['rtfx_full']:.1f} | {r['speedup_median']:.2f}x | "
                     f"{r['speedup_total']:.2f}x |")  # fmt: skip
    lines += [
        "",
        f"Gated model at budget {g['budget']}: decoder GFLOPs per window {g['gflops_dec']:.3f} "
        f"of {g['gflops_dec_full']:.3f} with every module (output layer included); decoder "
        f"sparsity {g['sparsity']:.1%} (FLOP-weighted, gated modules); {g['gate_patterns']} "
        f"distinct gate patterns over {g['windows']} windows.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    publish(run(args), args, argv)
    return 0


def publish(res: dict, args: argparse.Namespace, argv: list[str]) -> None:
    """Prints the report and writes it to ``--results-md`` (with the command)."""
    lines = report(res, args)
    print("\n".join(lines))
    if args.results_md:
        title = f"{TITLE}{': ' + args.label if args.label else ''}"
        write_section(args.results_md, title, "prune_whisper", argv, args.cite_path, lines)


if __name__ == "__main__":
    sys.exit(main())
