"""Score an event tagger: event classification accuracy, per class, and the confusion matrix.

    speechkit score-tagger --tagger exp/tagger --cuts data/cuts_test_seen.jsonl.gz \\
        [--results-md RESULTS.md --title "tagger: test_seen"] [--json exp/tagger/score_test_seen.json]

Each cut's reference is its corpus event (``cut.custom["event"]``: clean, noise, babble, beeps,
music); the hypothesis is the tagger's event (``speechkit.models.tagger.event_of``: the most
probable background tag above 0.5, else clean). Per class: recall (accuracy on the cuts of that
class), precision and count. Cuts without an event label or that cannot be read are counted and
left out. Prints the scores as JSON (and a table on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections import Counter
from pathlib import Path

logger = logging.getLogger("speechkit.bin.score_tagger")


def score_events(refs: list[str], hyps: list[str], classes: list[str]) -> dict:
    """Accuracy, per-class recall / precision / count and the confusion matrix (rows = reference,
    columns = hypothesis, in ``classes`` order) of paired event names."""
    import torch
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    index = {c: i for i, c in enumerate(classes)}
    conf = multiclass_confusion_matrix(
        torch.tensor([index[h] for h in hyps]), torch.tensor([index[r] for r in refs]),
        num_classes=len(classes),
    )  # fmt: skip
    n = int(conf.sum())
    per_class = {}
    for i, c in enumerate(classes):
        count, predicted = int(conf[i].sum()), int(conf[:, i].sum())
        per_class[c] = {
            "count": count,
            "recall": round(int(conf[i, i]) / count, 4) if count else None,
            "precision": round(int(conf[i, i]) / predicted, 4) if predicted else None,
        }
    return {
        "cuts": n,
        "accuracy": round(int(conf.diag().sum()) / n, 4) if n else None,
        "per_class": per_class,
        "classes": classes,
        "confusion": conf.tolist(),
    }


def tag_events(tagger_path: str, cut_paths: list[str], batch: int) -> tuple[list, list, Counter]:
    """(reference events, tagger events, skipped-cut reasons) over the manifests."""
    from speechkit.context_encoders import EventContext, audio_batches, load_cut_manifests
    from speechkit.models.tagger import event_of

    enc = EventContext.from_trained(tagger_path)
    cuts = load_cut_manifests(cut_paths)
    refs, hyps, skipped = [], [], Counter()
    for group in audio_batches(cuts, batch):
        keep = []
        for cut, wave, reason in group:
            why = (
                reason
                or enc.reject(wave)
                or ("" if "event" in (cut.custom or {}) else "no event label")
            )
            if why:
                skipped[why] += 1
            else:
                keep.append((cut.custom["event"], wave))
        if keep:
            _, probs = enc.tag([w for _, w in keep])
            hyps += event_of(probs, enc.tags)
            refs += [e for e, _ in keep]
    return refs, hyps, skipped


def markdown(title: str, command: str, scores: dict) -> str:
    from speechkit.report import provenance_lines

    classes = scores["classes"]
    pc = scores["per_class"]
    lines = [f"## {title}", "", f"Event accuracy **{scores['accuracy']:.3f}** on {scores['cuts']} cuts.",
             "", "| class | cuts | recall | precision |", "|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {c} | {pc[c]['count']} | {pc[c]['recall']} | {pc[c]['precision']} |" for c in classes
    ]
    lines += ["", "Confusion (rows = reference event, columns = tagger event):", "",
              "| | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]  # fmt: skip
    lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |"
              for c, row in zip(classes, scores["confusion"], strict=True)]  # fmt: skip
    return "\n".join([*lines, "", *provenance_lines(command), ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechkit score-tagger", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--tagger", required=True, help="tagger experiment dir or checkpoint .pt")
    p.add_argument("--cuts", required=True, nargs="+", help="cut manifest(s) with custom event")
    p.add_argument("--batch", type=int, default=32, help="clips per tagger pass")
    p.add_argument("--json", help="also write the scores to this file")
    p.add_argument("--results-md", help="markdown file to write a section into")
    p.add_argument("--title", help="section title (default: the manifests)")
    p.add_argument("--command", help="command to cite (default: this command)")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import torch

    torch.set_num_threads(1)
    from speechkit.data.phrasebook.backgrounds import EVENTS

    try:
        refs, hyps, skipped = tag_events(args.tagger, args.cuts, args.batch)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    if not refs:
        p.error(f"no scorable cuts in {' '.join(args.cuts)} (skipped: {dict(skipped)})")
    unknown = sorted((set(refs) | set(hyps)) - set(EVENTS))
    classes = list(EVENTS) + unknown  # a corpus with other event names is scored as well
    scores = {**score_events(refs, hyps, classes), "skipped": dict(skipped)}
    print(json.dumps(scores))
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2) + "\n")
    if args.results_md:
        argv_used = sys.argv[1:] if argv is None else argv
        command = args.command or shlex.join(["speechkit", "score-tagger", *argv_used])
        from speechkit.report import update_markdown

        title = args.title or " ".join(args.cuts)
        update_markdown(Path(args.results_md), title, markdown(title, command, scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
