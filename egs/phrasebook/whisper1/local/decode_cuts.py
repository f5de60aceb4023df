"""Decode a cut manifest with a Whisper model (speechkit transcribe's rules) into the decode-dir
layout that ``speechkit.bin.score`` reads, so scores before and after fine-tuning come from the
same scorer as every other recipe.

    python local/decode_cuts.py --model whisper-tiny.en --cuts data/cuts_test_seen.jsonl.gz \\
        --out exp/before/test_seen [--languages eng] [--tasks asr,st_eng] [--beam 5] \\
        [--max-utts 10]

For each cut in one of ``--languages``: ``asr`` -> ``OUT/asr_<lang>/`` (reference: transcript);
``st_eng`` (non-English cuts with an English translation) -> ``OUT/st_<lang>-eng/``. Each
directory gets ``hyp.txt``, ``ref.txt`` (``<cut_id> <text>``) and ``hyps.jsonl``; ``OUT/
decode_stats.json`` records model, beam, speed and subset. ``--max-utts N`` keeps the first N
cuts of each (language, task) in manifest order, the same ones before and after fine-tuning. The
spoken language is given to the model (not detected), as ``speechkit transcribe --language``
does. ``--model``: zoo name, packed
directory or training checkpoint ``.pt``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see speechkit/bin/transcribe.py

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from lhotse import CutSet  # noqa: E402
from tqdm import tqdm  # noqa: E402

from speechkit.inference import TranscribeOptions, Transcriber  # noqa: E402
from speechkit.pretrained import load_pretrained  # noqa: E402

logger = logging.getLogger("decode_cuts")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="zoo name, packed directory or .pt")
    p.add_argument("--cuts", required=True, help="lhotse cut manifest")
    p.add_argument("--out", required=True, help="decode directory")
    p.add_argument("--languages", default="eng", help="comma list of ISO 639-3 codes")
    p.add_argument("--tasks", default="asr", help="comma list: asr, st_eng")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8, help="utterances per encoder call")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument(
        "--max-utts", type=int, default=0, help="first N cuts per language and task (0 = all)"
    )
    return p.parse_args(argv)


def load_model(name: str):
    if Path(name).exists():
        return load_pretrained(name)
    from speechkit import zoo

    return zoo.load(name)


def references(cuts: list, lang: str, task: str) -> tuple[str, list]:
    """(output directory name, [(cut, reference)]) of one language and task."""
    mine = [c for c in cuts if c.supervisions and c.supervisions[0].language == lang]
    if task == "asr":
        return f"asr_{lang}", [(c, c.supervisions[0].text) for c in mine]
    pairs = [(c, (c.supervisions[0].custom or {}).get("translations", {}).get("eng")) for c in mine]
    return f"st_{lang}-eng", [(c, ref) for c, ref in pairs if ref]


def decode_group(pre, lang: str, task: str, pairs: list, args) -> tuple[list, float]:
    """[(cut_id, hyp, ref)] of one (language, task) and the seconds of audio decoded."""
    whisper_task = "transcribe" if task == "asr" else "translate"
    opts = TranscribeOptions(
        beam=args.beam, language=lang, task=whisper_task, batch_size=args.batch_size
    )
    transcriber = Transcriber(pre, opts)
    rows, audio_s = [], 0.0
    for start in tqdm(range(0, len(pairs), args.batch_size), desc=f"{task} {lang}", unit="batch"):
        chunk = pairs[start : start + args.batch_size]
        waves = [c.resample(16000).load_audio().mean(axis=0) for c, _ in chunk]
        for (cut, ref), result in zip(chunk, transcriber(waves, [c.id for c, _ in chunk])):
            rows.append((cut.id, result.text, ref))
        audio_s += sum(c.duration for c, _ in chunk)
    return rows, audio_s


def write_dir(d: Path, rows: list) -> None:
    d.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows)
    one_line = lambda t: " ".join(str(t).split())  # noqa: E731
    (d / "hyp.txt").write_text("".join(f"{i} {one_line(h)}\n" for i, h, _ in rows))
    (d / "ref.txt").write_text("".join(f"{i} {one_line(r)}\n" for i, _, r in rows))
    with open(d / "hyps.jsonl", "w") as f:
        for i, h, r in rows:
            f.write(json.dumps({"id": i, "hyp": h, "ref": r}, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    pre = load_model(args.model)
    cuts = list(CutSet.from_file(args.cuts))
    out = Path(args.out)
    total_audio, start = 0.0, time.perf_counter()
    for lang in args.languages.split(","):
        for task in args.tasks.split(","):
            if task == "st_eng" and lang == "eng":
                continue
            name, pairs = references(cuts, lang, task)
            if args.max_utts > 0:
                pairs = pairs[: args.max_utts]
            if not pairs:
                logger.warning("%s: no cut with a %s reference in %s", name, task, args.cuts)
                continue
            rows, audio_s = decode_group(pre, lang, task, pairs, args)
            write_dir(out / name, rows)
            total_audio += audio_s
    wall = time.perf_counter() - start
    stats = {"model": args.model, "device": "cpu", "audio_seconds": total_audio, "wall_s": wall,
             "rtfx": total_audio / max(wall, 1e-9),
             "options": {"beam_size": args.beam, "ctc_weight": 0.0},
             "max_utts_per_output": args.max_utts or None}  # fmt: skip
    (out / "decode_stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    logger.info("decoded %.0f s of audio in %.0f s into %s", total_audio, wall, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
