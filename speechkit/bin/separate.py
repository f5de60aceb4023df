"""Extract one source from recordings with a trained query-conditioned separator.

    speechkit separate --model exp/sep_supervised --query speech in.wav -o out.wav
    speechkit separate --model DIR --text "the music" in.wav -o music.wav
    speechkit separate --model DIR --enroll alice.wav meeting.flac -o alice.flac
    speechkit separate --model DIR --query speech --cuts test.jsonl.gz --out-dir data/test_sep

A file of any length is processed in overlapping chunks in bounded memory (``--chunk-s``), at
its own sample rate (resampled to 16 kHz for the model and back) and mixed down to mono. With
``--cuts`` every cut is extracted into ``OUT_DIR/audio/<cut id>.flac`` and
``OUT_DIR/cuts.jsonl.gz`` is the same cuts on the extracted audio (for ``speechkit decode``);
``--enroll cut`` then takes each cut's own enrollment (``cut.custom["enroll"]``, as written by
``speechkit prepare_mixtures``). Prints a JSON line: seconds of audio, wall seconds, real-time
factor, peak resident memory (MiB).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speechkit.models.query_encoders import EnrollmentError

logger = logging.getLogger("speechkit.bin.separate")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit separate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", required=True, help="separator experiment dir or checkpoint .pt")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", help="a sound class the model knows (speech, music, ...)")
    q.add_argument("--text", help="a text description of what to extract")
    q.add_argument("--enroll", help="audio of the target speaker (>= 1 s); 'cut' with --cuts")
    p.add_argument("input", nargs="?", help="input audio file")
    p.add_argument("-o", "--output", help="output audio file (mono, the input's rate)")
    p.add_argument("--cuts", help="lhotse cut manifest to extract instead of one file")
    p.add_argument("--out-dir", help="with --cuts: where audio/ and cuts.jsonl.gz go")
    p.add_argument("--chunk-s", type=float, default=8.0, help="seconds per model pass")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--remix", type=float, default=0.0,
                   help="share of the input added back, 0..1: (1 - r) * estimate + r * input "
                   "(for a recogniser downstream; default 0, the pure estimate)")  # fmt: skip
    return p


def read_enrollment(path: str | Path) -> np.ndarray:
    """A 16 kHz mono float32 wave from an audio file (resampled, channels averaged)."""
    from speechkit.separate import _resample

    wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return _resample(wave.mean(1), sr, 16000)


def _extract_cuts(args, load_extractor) -> float:
    """Extracts every cut of ``args.cuts``; returns the seconds of audio processed."""
    from lhotse import CutSet, Recording
    from lhotse.utils import fastcopy

    out_dir = Path(args.out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    fixed = None if args.enroll == "cut" else load_extractor(None)
    cuts, seconds = [], 0.0
    for cut in CutSet.from_file(args.cuts):
        if fixed is None and "enroll" not in (cut.custom or {}):
            raise ValueError(f"cut {cut.id} has no enrollment (custom 'enroll'): --enroll cut")
        ex = fixed or load_extractor(cut.custom["enroll"].load_audio().mean(0))
        wave = ex(cut.load_audio(), cut.sampling_rate)
        path = out_dir / "audio" / f"{cut.id}.flac"
        sf.write(path, np.clip(wave, -1, 1), cut.sampling_rate, subtype="PCM_16")
        rec = Recording.from_file(path, recording_id=cut.id)
        cuts.append(fastcopy(cut, recording=rec, start=0.0, duration=rec.duration))
        seconds += cut.duration
    CutSet.from_cuts(cuts).to_file(out_dir / "cuts.jsonl.gz")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if (args.cuts is None) == (args.input is None):
        parser.error("give an input file (with -o) or --cuts (with --out-dir)")
    if (args.input and not args.output) or (args.cuts and not args.out_dir):
        parser.error("an input file needs -o OUTPUT; --cuts needs --out-dir")
    if args.enroll == "cut" and not args.cuts:
        parser.error("--enroll cut takes each cut's enrollment: use it with --cuts")
    import torch

    from speechkit.separate import Extractor, load_trained

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        model = load_trained(args.model, "separator")

        def load_extractor(enroll_wave):
            if args.enroll and args.enroll != "cut" and enroll_wave is None:
                enroll_wave = read_enrollment(args.enroll)
            return Extractor(model, query=args.query, text=args.text, enroll=enroll_wave,
                             chunk_s=args.chunk_s, remix=args.remix)  # fmt: skip

        if args.cuts:
            seconds = _extract_cuts(args, load_extractor)
        else:
            seconds = load_extractor(None).file(args.input, args.output)["seconds"]
    except (EnrollmentError, ValueError, FileNotFoundError, sf.LibsndfileError) as e:
        parser.error(str(e))
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": round(seconds, 2), "wall_s": round(wall, 2),
                      "rtf": round(wall / max(seconds, 1e-9), 4),
                      "peak_rss_mib": round(peak_mib, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
