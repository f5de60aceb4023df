"""``speechkit transcribe``: Whisper transcription (or translation into English) of audio inputs.

    speechkit transcribe --model whisper-base a.wav b.flac --output-format all --output-dir out
    speechkit transcribe --model whisper-tiny.en --wav-scp data/wav.scp --output-dir out
    speechkit transcribe --model exp/packed --cuts test_cuts.jsonl.gz --language de --task translate
    speechkit transcribe --model exp/wprune/model_avg.pt --budget 0.5 --language en a.wav

Inputs (``speechkit.data.inputs``, as ``speechkit decode`` reads them): audio files (a name is
always a file name, never a command), a Kaldi ``wav.scp`` (``utt path``, or ``utt command |``: a
shell command that writes audio to its stdout, run only with ``--allow-pipes``) and/or a lhotse
cut manifest. With
``--output-dir``, every transcript is printed to stdout as ``name<TAB>text`` and the directory
gets ``<name>.txt|json|srt`` per input. Without it, stdout carries the ``--output-format``:
``txt`` lines ``name<TAB>text``, ``json`` one JSON object per line, ``srt`` the subtitles of a
single input (``speechkit transcribe a.wav --output-format srt > a.srt``). An input that cannot
be read (missing, empty, not audio, failing command) is logged with its name and reason and
skipped; the others are still decoded, and the exit code is 1 if any failed. Decoding rules:
``speechkit/decode/whisper.py``; scored evaluation of a test set: ``speechkit decode``.

Gated Whisper models (``model_type: gated_whisper``, trained with ``task: prune_whisper``) need
``--budget B`` (in [0, 1]: the fraction of the decoder modules' FLOPs to keep; not needed for
one trained with ``gate_mode: none``), as ``speechkit decode --budget`` takes it: each 30 s
window gets its decoder gates from the gate predictor at that budget, and the modules gated off
are not run. The log ends with the decoder GFLOPs per window with and without gates and the
achieved sparsity. ``--budget`` with a model without gates is an error.

Threads: torch's (``--threads``), under OpenMP's default wait policy (a short spin before a
thread sleeps). On a machine busy with other work, ``OMP_WAIT_POLICY=PASSIVE`` and
``--search-threads 1`` keep the small per-step ops of a beam search from waiting for a
descheduled thread (egs/phrasebook/whisper1/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from speechkit.config import ConfigError
from speechkit.data.audio import AudioError, load_audio
from speechkit.data.inputs import Inputs, collect_inputs
from speechkit.data.kaldi import KaldiDataError
from speechkit.inference import Result, TranscribeOptions, Transcriber
from speechkit.models.whisper import STEP_KERNELS

logger = logging.getLogger("speechkit.bin.transcribe")

FORMATS = ("txt", "json", "srt")


def srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def to_srt(result: Result) -> str:
    """SubRip text: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` then the segment text."""
    cues = [
        f"{i}\n{srt_time(s.start)} --> {srt_time(s.end)}\n{s.text}\n"
        for i, s in enumerate(result.segments, 1)
    ]
    return "\n".join(cues)


def _file_stem(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem if "/" in name else name).strip("_") or "audio"
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate)
    return candidate


def stdout_text(result: Result, fmt: str) -> str:
    """What stdout shows of ``result`` without ``--output-dir`` (see the module docstring)."""
    if fmt == "json":
        return json.dumps(asdict(result), ensure_ascii=False)
    if fmt == "srt":
        return to_srt(result)
    return f"{result.name}\t{result.text}"


def write_outputs(result: Result, out_dir: Path, formats: list[str], stem: str) -> None:
    if "txt" in formats:
        (out_dir / f"{stem}.txt").write_text(result.text + "\n", encoding="utf-8")
    if "json" in formats:
        body = json.dumps(asdict(result), ensure_ascii=False, indent=2)
        (out_dir / f"{stem}.json").write_text(body + "\n", encoding="utf-8")
    if "srt" in formats:
        (out_dir / f"{stem}.srt").write_text(to_srt(result), encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit transcribe", description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="*", help="audio files")
    p.add_argument("--model", default="whisper-base", help="zoo name or packed model directory")
    p.add_argument("--cuts", help="lhotse cut manifest (jsonl[.gz])")
    p.add_argument("--wav-scp", help="Kaldi wav.scp: '<utt> <path>' or '<utt> <command> |'")
    p.add_argument("--allow-pipes", action="store_true",
                   help="run wav.scp lines '<utt> <command> |' through the shell (trusted files only)")  # fmt: skip
    p.add_argument("--beam", type=int, default=5, help="beam size (1 = greedy)")
    p.add_argument("--batch-size", type=int, default=8, help="30 s windows per encoder call")
    p.add_argument("--language", help="ISO 639-1 or 639-3 code; default: detect (multilingual)")
    p.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    p.add_argument(
        "--output-format", choices=(*FORMATS, "all"), default="txt",
        help="files per input in --output-dir; without it, what stdout shows (srt: one input)",
    )  # fmt: skip
    p.add_argument("--output-dir", help="write <name>.<format> files here")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--search-threads", type=int, default=0,
                   help="CPU threads of the decoder steps of a one-file beam search (0 = "
                        "--threads); 1 is faster on a machine busy with other work")  # fmt: skip
    p.add_argument("--int8", action="store_true", help="dynamic int8 Linear layers (CPU)")
    p.add_argument("--int8-keep-float", type=lambda t: [x for x in t.split(",") if x],
                   default=[], metavar="PATTERN[,PATTERN...]",
                   help="with --int8: Linear layers left float32, by part of their name "
                   "(ffn.net.3 = every second FFN projection; decoder.output = the output "
                   "projection; encoder. = int8 for the decoder only): closer to float32's "
                   "transcripts, slower "
                   "(speechkit bench whisper-int8)")  # fmt: skip
    p.add_argument("--step-kernel", "--output-kernel", choices=STEP_KERNELS, default=None,
                   help="CPU float32 products of a beam step: half (default without --int8) = "
                   "the decoder's weights read from float16 copies, exact for Whisper's "
                   "released weights, multiplied in float32 (costs half the decoder's weights "
                   "in memory again: about 55 MiB tiny, 120 MiB base); packed = MKL's packed copy "
                   "of the token table (faster on some CPUs, slower on AMD EPYC; costs the table "
                   "again); plain = the weights as they are (the only choice with --int8)")  # fmt: skip
    p.add_argument("--budget", type=float, default=None,
                   help="gated Whisper models: fraction of the decoder modules' FLOPs to keep, "
                   "in [0, 1] (required for them, an error for other models)")  # fmt: skip
    return p


def _load_all(cuts: list) -> tuple[list, list[str], list[str]]:
    """(S,) 16 kHz waves and names of the cuts whose audio loads; the names of the others."""
    waves, names, failed = [], [], []
    for cut in cuts:
        try:
            waves.append(load_audio(cut, 16000))
            names.append(cut.id)
        except AudioError as e:
            logger.error("skipping %s", e)
            failed.append(cut.id)
    return waves, names, failed


def _inputs(args: argparse.Namespace) -> Inputs:
    try:
        inputs = collect_inputs(args.files, args.wav_scp, args.cuts, args.allow_pipes)
    except (KaldiDataError, FileNotFoundError) as e:  # a pipe without --allow-pipes, a bad line
        build_parser().error(str(e))
    for e in inputs.errors:
        logger.error("skipping %s", e)
    return inputs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (args.files or args.cuts or args.wav_scp):
        build_parser().error("give audio files, --wav-scp or --cuts")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    inputs = _inputs(args)
    formats = list(FORMATS) if args.output_format == "all" else [args.output_format]
    out_dir = Path(args.output_dir) if args.output_dir else None
    if args.int8_keep_float and not args.int8:
        build_parser().error("--int8-keep-float goes with --int8")
    if args.int8 and args.step_kernel not in (None, "plain"):
        build_parser().error(f"--step-kernel {args.step_kernel} does not go with --int8")
    if out_dir is None and args.output_format == "all":
        build_parser().error("--output-format all writes files: give --output-dir")
    if out_dir is None and args.output_format == "srt" and len(inputs) > 1:
        build_parser().error(
            f"--output-format srt on stdout takes one input ({len(inputs)} given): "
            "give --output-dir for one .srt per input"
        )
    try:
        options = TranscribeOptions(args.beam, args.language, args.task, args.batch_size)
        transcriber = Transcriber.load(args.model, options, args.device, args.int8, args.budget,
                                       keep_float=args.int8_keep_float,
                                       step_kernel=args.step_kernel)  # fmt: skip
    except (ConfigError, KeyError) as e:  # bad option, or a language/task the model lacks
        build_parser().error(str(e).strip("'\""))
    if args.search_threads < 0:
        build_parser().error(f"--search-threads must be >= 0, got {args.search_threads}")
    transcriber.windows.search_threads = args.search_threads or None
    shown = "txt" if out_dir else args.output_format
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed, done, taken = [e.name for e in inputs.errors], 0, set()
    step = max(1, options.batch_size)
    cuts = inputs.cuts
    for start in tqdm(range(0, len(cuts), step), desc="transcribe", unit="batch"):
        waves, names, bad = _load_all(cuts[start : start + step])
        failed += bad
        for result in transcriber(waves, names) if waves else []:
            print(stdout_text(result, shown), flush=True)
            if out_dir:
                write_outputs(result, out_dir, formats, _file_stem(result.name, taken))
            done += 1
    logger.info("transcribed %d of %d inputs; %d failed", done, len(inputs), len(failed))
    gates = transcriber.windows.gate_summary()
    if gates is not None:
        logger.info(
            "gates at budget %.3g: decoder GFLOPs per window %.4g (%.4g without gates), "
            "sparsity %.3f, %d windows, %d gate patterns", gates["budget"], gates["gflops_dec"],
            gates["gflops_dec_full"], gates["sparsity"], gates["windows"], gates["gate_patterns"],
        )  # fmt: skip
    if failed:
        logger.error("failed inputs: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
