"""Keep the weak (audio, transcript) pairs that look right, before pretraining on them.

    speechkit weak_filter --cuts data/splits/gold10/weak_real.jsonl.gz --method ctc \\
        --model exp/seed/model_avg.pt --keep 0.7            # -> .../weak_real_ctc.jsonl.gz
    speechkit weak_filter --cuts ... --method agreement --sources whisper-tiny.en,s2t-seed

``ctc``: the score of each pair is how well its weak transcript aligns to the audio under the
CTC head of ``--model`` (a speechkit S2T model: packed directory or checkpoint), relative to
the model's own best path (``speechkit/data/weak_filter.py``). ``agreement``: minus the WER
between two recognisers' hypotheses (``weak_hyps``); cuts with fewer than two are not kept.
The best ``--keep`` fraction of every language is kept. Several ``--cuts`` may be given;
each gives ``<name>_<method>.jsonl.gz`` beside it and a ``.json`` report: the fraction kept per
language, and the WER of the kept and of the dropped weak transcripts against the gold text
(which the filter never reads).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from lhotse import CutSet

from speechkit.bin.gold_split import manifest_name
from speechkit.checkpoint import atomic_write_text
from speechkit.data.weak import WEAK_HYPS, WEAK_TEXT, has_weak, read_manifest, weak_error_rates
from speechkit.data.weak_filter import agreement_score, ctc_alignment_score, keep_best

logger = logging.getLogger("speechkit.bin.weak_filter")


def _batches(cuts: list, max_seconds: float) -> list[list]:
    """Cuts grouped, longest first, into batches of at most ``max_seconds`` of audio."""
    batches, current, total = [], [], 0.0
    for cut in sorted(cuts, key=lambda c: c.duration, reverse=True):
        if current and total + cut.duration > max_seconds:
            batches.append(current)
            current, total = [], 0.0
        current.append(cut)
        total += cut.duration
    return batches + ([current] if current else [])


@torch.inference_mode()
def ctc_scores(cuts: list, model_path: str, batch_seconds: float = 100.0) -> dict[str, float]:
    """``{cut_id: score}``: CTC alignment scores of the weak transcripts under the model;
    ``-inf`` for cuts whose audio cannot be read."""
    from speechkit.data import AudioError, LogMel, load_audio
    from speechkit.pretrained import load_pretrained

    pre = load_pretrained(model_path, device="cpu")
    logmel, tok, model = LogMel(pre.features), pre.tokenizer, pre.model.eval()
    scores: dict[str, float] = {}
    for batch in _batches(cuts, batch_seconds):
        waves, ok = [], []
        for cut in batch:
            try:
                waves.append(torch.from_numpy(load_audio(cut, pre.features.sample_rate)))
                ok.append(cut)
            except AudioError as e:
                logger.warning("%s: unreadable audio, not kept (%s)", cut.id, e.reason)
                scores[cut.id] = float("-inf")
        if not ok:
            continue
        lens = torch.tensor([w.numel() for w in waves])
        feats, feat_lens = logmel(torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), lens)
        enc, enc_lens = model.encode(feats, feat_lens)
        log_probs = model.ctc_log_probs(enc)  # (B, T', V)
        for i, cut in enumerate(ok):
            tokens = tok.encode(cut.supervisions[0].custom[WEAK_TEXT])
            scores[cut.id] = ctc_alignment_score(log_probs[i, : enc_lens[i]], tokens, tok.blank_id)
    return scores


def filter_report(cuts: list, kept_ids: set[str], scores: dict[str, float]) -> dict:
    """Fraction kept per language; WER of the kept and dropped weak text against the gold."""
    kept = [c for c in cuts if c.id in kept_ids]
    dropped = [c for c in cuts if c.id not in kept_ids]
    per_lang: dict[str, list[int]] = {}
    for c in cuts:
        counts = per_lang.setdefault(c.supervisions[0].language, [0, 0])
        counts[0] += 1
        counts[1] += c.id in kept_ids
    fraction = {lang: round(k / n, 4) for lang, (n, k) in sorted(per_lang.items())}
    fraction["all"] = round(len(kept) / max(1, len(cuts)), 4)
    return {
        "num_in": len(cuts),
        "num_kept": len(kept),
        "fraction_kept": fraction,
        "wer_kept": weak_error_rates(kept),
        "wer_dropped": weak_error_rates(dropped),
        "wer_all": weak_error_rates(cuts),
        "scores": {k: (v if v > float("-inf") else None) for k, v in sorted(scores.items())},
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit weak_filter", description=__doc__.split("\n")[0])
    p.add_argument("--cuts", nargs="+", required=True, type=Path, help="weak manifests")
    p.add_argument("--method", choices=("ctc", "agreement"), default="ctc")
    p.add_argument("--model", help="S2T model whose CTC head scores the pairs (ctc)")
    p.add_argument("--sources", default="", help="two weak_hyps sources (agreement): A,B")
    p.add_argument("--keep", type=float, default=0.7, help="fraction kept per language")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.method == "ctc" and not args.model:
        build_parser().error("--method ctc needs --model")
    sources = [s for s in args.sources.split(",") if s]
    if args.method == "agreement" and len(sources) != 2:
        build_parser().error("--method agreement needs --sources A,B")
    for path in args.cuts:
        cuts = [c for c in read_manifest(path) if c.supervisions and has_weak(c.supervisions[0])]
        if args.method == "ctc":
            scores = ctc_scores(cuts, args.model)
        else:
            scores = {
                c.id: agreement_score(c.supervisions[0].custom.get(WEAK_HYPS) or {}, sources)
                for c in cuts
            }
        languages = {c.id: c.supervisions[0].language for c in cuts}
        kept_ids = keep_best(scores, languages, args.keep)
        out = path.with_name(f"{manifest_name(path)}_{args.method}.jsonl.gz")
        CutSet.from_cuts(c for c in cuts if c.id in kept_ids).to_file(out)
        report = {"cuts": str(path), "method": args.method, "model": args.model,
                  "sources": sources, "keep": args.keep, **filter_report(cuts, kept_ids, scores)}  # fmt: skip
        atomic_write_text(
            out.with_name(f"{manifest_name(out)}.json"), json.dumps(report, indent=1) + "\n"
        )
        logger.info(
            "%s: kept %d of %d (%s); weak WER kept %.1f %%, dropped %.1f %%",
            out, report["num_kept"], report["num_in"], report["fraction_kept"],
            report["wer_kept"].get("all", {}).get("rate", float("nan")),
            report["wer_dropped"].get("all", {}).get("rate", float("nan")),
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
