"""Synthesise speech: one text to a wav file, a text file or a cut set to a lhotse corpus.

    speechkit synthesize --model exp/tts --vocoder exp/vocoder --speaker eng-m3-p55-s160 \\
        --language eng "Where is the museum?" -o out.wav
    speechkit synthesize --model exp/tts --vocoder exp/vocoder --speaker eng-m3-p55-s160 \\
        --language eng --text-file novel.txt --out-dir data/synth --name novel
    speechkit synthesize --model exp/tts --vocoder exp/vocoder --cuts data/cuts_test.jsonl.gz \\
        --out-dir data/synth --name test          # each cut's text, language and speaker
    speechkit synthesize --model exp/tts --vocoder exp/vocoder --cuts data/cuts_test_novel.jsonl.gz \
        --language deu --speaker deu-f1-p65-s165,deu-m2-p60-s165 --out-dir data/synth --name deu
                                                  # German cuts only, said by these voices in turn
    speechkit synthesize --model exp/tts --vocoder griffin-lim --cuts data/novel_texts.jsonl.gz \
        --speaker auto --out-dir data/synth --name novel
                                                  # a text-only supervision manifest, each
                                                  # text said by the training voices of its
                                                  # language in turn; Griffin-Lim
    speechkit synthesize --list --model exp/tts --vocoder exp/vocoder   # speakers and languages
    speechkit synthesize --vocoder exp/vocoder --pack exp/vocoder/packed   # a packed vocoder

``--model``: the acoustic model (``speechkit.synthesize.load_acoustic``); ``--vocoder``: a
vocoder training directory, checkpoint or packed directory, ``griffin-lim`` (no trained
vocoder), or the codec whose codes a codec-target model was trained on (its decoder vocodes:
``speechkit.synthesize.CodecVocoder``). ``--cuts`` takes a cut manifest or a supervision manifest (text only); the
supervisions' custom fields (translations) are kept in the new corpus. A corpus is written as
``OUT/wavs/*.wav`` and ``OUT/{recordings,supervisions,cuts}_<name>.jsonl.gz``; items that cannot
be said are skipped, counted and listed in ``OUT/failed_<name>.jsonl`` (exit status 0 unless
every item failed). A single text that cannot be said exits with status 2 and the reason.
"""

from __future__ import annotations

import os

# OpenMP threads that spin-wait stall every small op on a busy machine (more busy processes
# than cores): passive waiting, as speechkit transcribe sets it. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import soundfile as sf  # noqa: E402
import torch  # noqa: E402

logger = logging.getLogger("speechkit.bin.synthesize")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit synthesize",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("text", nargs="?", help="the text to say (one utterance; long text is chunked)")
    p.add_argument("--model", help="acoustic model: training directory, checkpoint or packed dir")
    p.add_argument(
        "--vocoder",
        required=True,
        help="vocoder: training dir, checkpoint, packed dir, griffin-lim (no trained vocoder), "
        "or the codec of a codec-target model",
    )
    p.add_argument(
        "--speaker",
        help="speaker name (required for a text or --text-file); with --cuts, comma-separated "
        "names said in turn instead of each cut's own speaker, or 'auto': the model's voices "
        "of each text's language (speaker ids '<language>-...') in turn",
    )
    p.add_argument("--language", help="language code (eng, deu, spa, fra); with --cuts a filter")
    p.add_argument("-o", "--output", help="wav file for a single text")
    p.add_argument("--text-file", help="UTF-8 file, one utterance per line -> a corpus")
    p.add_argument("--cuts", help="lhotse cut or supervision manifest: its texts -> a corpus")
    p.add_argument("--out-dir", help="corpus directory (with --text-file or --cuts)")
    p.add_argument("--name", default="synth", help="manifest suffix of the corpus")
    p.add_argument("--limit", type=int, help="synthesise only the first N items of the corpus")
    p.add_argument("--list", action="store_true", help="print speakers and languages and exit")
    p.add_argument("--pack", metavar="DIR", help="pack the vocoder into DIR and exit")
    p.add_argument("--max-chars", type=int, default=200, help="longest chunk said in one pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return p


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> str:
    """The mode (pack, list, text, corpus), or a usage error that says what is missing."""
    if a.pack:
        if a.vocoder == "griffin-lim":  # speechkit.synthesize.GRIFFIN_LIM
            p.error("--pack needs a trained vocoder; griffin-lim has no weights to pack")
        return "pack"
    if a.model is None:
        p.error("--model (the acoustic model) is required")
    if a.list:
        return "list"
    sources = [x for x in (a.text, a.text_file, a.cuts) if x is not None]
    if len(sources) != 1:
        p.error("give exactly one of: a text argument, --text-file, --cuts")
    if a.text is not None:
        if not a.output:
            p.error("a text needs -o/--output (a .wav file)")
        if not a.speaker or not a.language:
            p.error("a text needs --speaker and --language")
        return "text"
    if not a.out_dir:
        p.error("--text-file and --cuts need --out-dir")
    if a.text_file and (not a.speaker or not a.language):
        p.error("--text-file needs --speaker and --language")
    return "corpus"


def main(argv: list[str] | None = None) -> int:
    from speechkit.synthesize import (
        SynthesisError,
        items_from_cuts,
        items_from_text_file,
        load_tts,
        pack_vocoder,
        synthesize_corpus,
        voices_by_language,
    )

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = build_parser()
    a = p.parse_args(argv)
    mode = _check_args(p, a)
    torch.set_num_threads(max(1, a.threads))
    if mode == "pack":
        try:
            print(pack_vocoder(a.vocoder, a.pack))
        except (FileNotFoundError, ValueError) as e:
            print(f"speechkit synthesize: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        tts = load_tts(a.model, a.vocoder, a.device, max_chars=a.max_chars)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"speechkit synthesize: {e}", file=sys.stderr)
        return 2
    if mode == "list":
        print(json.dumps({"speakers": tts.speakers, "languages": tts.languages}, indent=1))
        return 0
    if mode == "text":
        try:
            wave, sr = tts.synthesize(a.text, a.speaker, a.language)
        except SynthesisError as e:
            print(f"speechkit synthesize: {e}", file=sys.stderr)
            return 2
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        sf.write(a.output, wave, sr, subtype="PCM_16")
        print(f"{a.output}: {len(wave) / sr:.2f} s at {sr} Hz")
        return 0
    if a.text_file:
        items = items_from_text_file(a.text_file, a.speaker, a.language)
    else:
        from lhotse import CutSet, SupervisionSet, load_manifest_lazy

        manifest = load_manifest_lazy(a.cuts)
        if not isinstance(manifest, (CutSet, SupervisionSet)):
            p.error(f"--cuts {a.cuts}: a {type(manifest).__name__}, not cuts or supervisions")
        if a.speaker == "auto":
            items = items_from_cuts(manifest, language=a.language,
                                    voices=voices_by_language(tts.speakers))  # fmt: skip
        else:
            speakers = [x for x in (a.speaker or "").split(",") if x]
            items = items_from_cuts(manifest, speakers, a.language)
    if a.limit is not None:
        items = itertools.islice(items, a.limit)
    summary = synthesize_corpus(tts, items, a.out_dir, a.name)
    print(json.dumps(summary, indent=1))
    return 0 if summary["synthesised"] or not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
