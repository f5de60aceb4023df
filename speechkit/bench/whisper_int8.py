"""Which Linear layers of a Whisper model to quantise: identity to float32, WER and speed.

    speechkit bench whisper-int8 --model whisper-tiny.en --audio-dir wavs --text wavs/text \
        --variant all= --variant fc2,output=ffn.net.3,decoder.output

(or ``python -m speechkit.bench.whisper_int8 ...``). Each ``--variant NAME=PATTERNS`` is
``speechkit.inference.quantize_int8`` with the comma-separated ``keep_float`` patterns (layers
left in float32, by part of their name; ``decoder.output`` = the output projection; empty =
every Linear layer int8). The float32 model and every variant decode each utterance in turn
(the order rotates per utterance, so a slow spell of the machine slows all of them), one
utterance per call, beam 5, ``--threads`` CPU threads.

Reported per variant: the percentage of utterances whose normalised transcript equals the float32
one, WER, and speed against float32 (total and median per utterance ratio of float32 s / variant
s). A test set is any directory of audio with a Kaldi-style reference list (``--audio-dir``,
``--text``) or a cut manifest (``--cuts``, ``--language``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as speechkit transcribe sets it

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from speechkit.bench import add_cite_argument, testset, write_section  # noqa: E402
from speechkit.bench.whisper_speed import identical_percent  # noqa: E402
from speechkit.inference import TranscribeOptions, Transcriber, quantize_int8  # noqa: E402
from speechkit.metrics import wer  # noqa: E402
from speechkit.pretrained import load_pretrained  # noqa: E402

logger = logging.getLogger(__name__)
TITLE = "Whisper int8: which layers to quantise"


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME=PAT1,PAT2`` -> (NAME, (PAT1, PAT2)); ``NAME=`` keeps nothing in float32."""
    name, sep, patterns = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--variant wants NAME=PATTERNS, got {text!r}")
    return name, tuple(p for p in patterns.split(",") if p)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="speechkit bench whisper-int8",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--model", default="whisper-tiny.en", help="zoo name or packed directory")
    testset.add_arguments(p, max_utts=None)
    p.add_argument("--variant", type=parse_variant, action="append", required=True,
                   help="NAME=PATTERNS: layers kept float32 (repeatable)")  # fmt: skip
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results-md", type=Path, default=None, help="write the section here")
    add_cite_argument(p)
    args = p.parse_args(argv)
    names = [name for name, _ in args.variant]
    if len(set(names)) != len(names) or "float32" in names:
        p.error("--variant names must be distinct and not 'float32'")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    data = testset.from_args(args)
    if Path(args.model).exists():
        pretrained = load_pretrained(args.model)
    else:
        from speechkit import zoo

        pretrained = zoo.load(args.model)
    code = "en" if args.language == "eng" else args.language
    options = TranscribeOptions(beam=args.beam, language=code)
    systems = {"float32": Transcriber(pretrained, options)}
    for name, keep in args.variant:
        model = quantize_int8(pretrained.model, keep_float=keep)
        systems[name] = Transcriber(dataclasses.replace(pretrained, model=model), options)
    names = list(systems)
    for tr in systems.values():  # warm-up, not timed
        tr(data.waves[:1])
    texts = {n: [] for n in names}
    took = {n: [] for n in names}
    for i, wave in enumerate(data.waves):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            texts[n].append(systems[n]([wave])[0].text)
            took[n].append(time.perf_counter() - start)
        logger.info("%d/%d done", i + 1, len(data.waves))
    rows = []
    for n in names:
        ratios = [a / b for a, b in zip(took["float32"], took[n])]
        keep = dict(args.variant).get(n)
        rows.append(
            f"| {n} | {'-' if n == 'float32' else ', '.join(keep) or '(none)'} | "
            f"{identical_percent(texts[n], texts['float32']):.0f} | "
            f"{wer(data.refs, texts[n]).rate:.1f} | {data.seconds / sum(took[n]):.2f} | "
            f"{sum(took['float32']) / sum(took[n]):.2f} | {statistics.median(ratios):.2f} |"
        )
    table = [
        f"Test set: {data.name}, {len(data.waves)} utterances, {data.seconds:.0f} s; model "
        f"{Path(args.model).name}; beam {args.beam}; {args.threads} CPU threads.", "",
        "| variant | kept float32 | identical to float32 % | WER % | RTFx | speed vs float32 "
        "(total) | median per utt |",
        "|---|---|---|---|---|---|---|", *rows, "",
    ]  # fmt: skip
    print("\n".join(table))
    if args.results_md:
        write_section(args.results_md, f"{TITLE} ({Path(args.model).name})", "whisper_int8",
                      argv, args.cite_path, table)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
