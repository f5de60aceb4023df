"""Find anchor segments in weakly labelled clips with a trained tagger (USS-style).

    speechkit mine-anchors --tagger exp/tagger --cuts data/phrasebook/cuts_train.jsonl.gz \\
        --out data/anchors/cuts_train.jsonl.gz --window-s 1.0

For every clip and each of its clip-level labels (speech, and its background class), the
``--window-s`` segment where the tagger finds that class most present and the clip's other
classes least (``speechkit.data.anchors``) becomes a cut with ``custom["anchor_class"]``; the
weak arm of ``task: separation`` trains on them. Only clip labels and the tagger are used: no
clean source. Prints a JSON line with the number of anchors per class and their mean score.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import torch
from lhotse import CutSet

from speechkit.data.anchors import anchor_cuts, cut_labels, pick_anchors
from speechkit.data.audio import AudioError, load_audio
from speechkit.separate import load_trained
from speechkit.tasks.tagger import pad_waves

logger = logging.getLogger("speechkit.bin.mine_anchors")
FRAME_S = 0.02  # tagger frames (speechkit.models.tagger)


def _batches(paths: list[str], size: int):
    """Lists of (cut, wave) of up to ``size`` readable clips, in manifest order."""
    batch = []
    for path in paths:
        for cut in CutSet.from_file(path):
            try:
                batch.append((cut, load_audio(cut)))
            except AudioError as e:
                logger.warning("skipping %s", e)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechkit mine-anchors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--tagger", required=True, help="tagger experiment dir or checkpoint .pt")
    p.add_argument("--cuts", required=True, nargs="+", help="weakly labelled clips (manifests)")
    p.add_argument("--out", required=True, help="anchor cut manifest to write")
    p.add_argument("--window-s", type=float, default=1.0, help="anchor length in seconds")
    p.add_argument("--min-score", type=float, default=-1.0,
                   help="drop anchors whose mean margin (-1..1) is below this (-1: keep all)")  # fmt: skip
    p.add_argument("--batch", type=int, default=32, help="clips per tagger pass")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # before the tagger pass, not after
    tagger = load_trained(args.tagger, "tagger")
    tags = list(tagger.cfg.tags)
    window = max(1, round(args.window_s / FRAME_S))
    anchors, scores = [], defaultdict(list)
    for batch in _batches(args.cuts, args.batch):
        wave, lengths = pad_waves([w for _, w in batch])
        with torch.no_grad():
            out = tagger(wave, lengths)
        for i, (cut, _) in enumerate(batch):
            labels = [t for t in cut_labels(cut) if t in tags]
            valid = int(out["frame_mask"][i].sum())
            probs = out["frame_probs"][i, :valid].numpy()
            picked = [
                w for w in pick_anchors(probs, labels, tags, window) if w[2] >= args.min_score
            ]
            for tag, _, score in picked:
                scores[tag].append(score)
            anchors += anchor_cuts(cut, picked, FRAME_S, args.window_s)
    CutSet.from_cuts(anchors).to_file(args.out)
    summary = {t: {"anchors": len(s), "mean_score": round(sum(s) / len(s), 3)}
               for t, s in sorted(scores.items())}  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
