"""Compute per-cut speaker and acoustic-event contexts once, for context-gated pruning.

    speechkit compute-contexts --cuts data/cuts_train.jsonl.gz data/cuts_dev.jsonl.gz \\
        --kinds speaker,event --tagger exp/tagger --out data/contexts

Writes ``OUT/speaker.safetensors`` (Resemblyzer GE2E d-vectors, 256-d) and
``OUT/event.safetensors`` (the clip embedding of a tagger trained by the recipe) for every cut
of every manifest (``speechkit.data.contexts``; the encoder's name is in the file's metadata).
``--cuts`` may be given several manifests (or repeated); their cut ids must be distinct.

A cut whose context cannot be computed (unreadable, too short, silent, failed embedding) is
stored with ``valid = 0`` and counted, never a crash (``speechkit.context_encoders``). Prints a
JSON line per kind: cuts, valid, invalid reasons and counts, dim, encoder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from speechkit.data.contexts import STORED_KINDS, write_context_store

logger = logging.getLogger("speechkit.bin.compute_contexts")


def parse_kinds(text: str) -> list[str]:
    """'speaker,event' -> ['speaker', 'event']; a ValueError names an unknown or unstored kind."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise ValueError(f"--kinds names no kind; choose from {','.join(STORED_KINDS)}")
    for k in kinds:
        if k == "language":
            raise ValueError(
                "language context is not stored: it is the model's own language-ID posterior "
                f"at inference (oracle label in training); --kinds takes {','.join(STORED_KINDS)}"
            )
        if k not in STORED_KINDS:
            raise ValueError(f"unknown context kind {k!r}; --kinds takes {','.join(STORED_KINDS)}")
    return list(dict.fromkeys(kinds))


def build_encoders(kinds: list[str], tagger: str | None, speaker_min_seconds: float) -> list:
    """The encoder of each kind; a missing or wrong ``tagger`` is a ValueError saying what to pass."""
    from speechkit.context_encoders import EventContext, SpeakerContext

    encoders = []
    for kind in kinds:
        if kind == "speaker":
            encoders.append(SpeakerContext(speaker_min_seconds))
        elif kind == "event":
            if not tagger:
                raise ValueError(
                    "event contexts need a trained tagger: pass --tagger EXP_DIR_OR_MODEL "
                    "(train one with: speechkit train --config conf/separation/tagger.yaml ...)"
                )
            if not Path(tagger).exists():
                raise ValueError(f"--tagger {tagger} does not exist")
            try:
                encoders.append(EventContext.from_trained(tagger))
            except (FileNotFoundError, ValueError, KeyError) as e:
                raise ValueError(f"--tagger {tagger}: {e}") from e
    return encoders


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit compute-contexts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--cuts", required=True, nargs="+", action="extend",
                   help="lhotse cut manifest(s)")  # fmt: skip
    p.add_argument("--kinds", default="speaker,event", help="comma-separated: speaker,event")
    p.add_argument("--tagger", help="event tagger: experiment dir or checkpoint .pt (for event)")
    p.add_argument("--out", required=True, help="context directory to write")
    p.add_argument("--batch", type=int, default=32, help="cuts per encoder pass")
    p.add_argument("--speaker-min-seconds", type=float, default=1.0,
                   help="shorter cuts get no d-vector (GE2E partials are 1.6 s)")  # fmt: skip
    p.add_argument("--num-threads", type=int, default=1, help="torch threads (0: torch default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import torch

    from speechkit.context_encoders import compute_contexts, load_cut_manifests

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    try:
        kinds = parse_kinds(args.kinds)
        cuts = load_cut_manifests(args.cuts)
        encoders = build_encoders(kinds, args.tagger, args.speaker_min_seconds)
    except (ValueError, ImportError) as e:
        parser.error(str(e))
    if len(cuts) == 0:
        parser.error(f"no cuts in {' '.join(args.cuts)}")
    results = compute_contexts(cuts, encoders, args.batch, progress=not args.no_progress)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for kind, res in results.items():
        path = write_context_store(args.out, kind, res.ids, res.vectors, res.valid, res.encoder)
        print(json.dumps({"kind": kind, "file": str(path), **res.summary()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
