"""Synthesises the texts of a cut set with a trained acoustic model and Griffin-Lim (or a
trained vocoder), into a directory that ``speechkit.bin.tts_score`` and ``speechkit.bin.tts_plot``
read (the synthesis stage of the TTS recipes, egs/phrasebook/tts1 and egs/ljspeech/tts1).

Usage::

    python -m speechkit.bin.tts_synthesize --model exp/fs2_cpu/model_avg.pt \\
        --cuts data/tts/cuts_test.jsonl.gz --out exp/fs2_cpu/synth_test --languages eng \\
        --limit 60 [--vocoder exp/vocoder]      # or: speechkit tts-synthesize ...

Each cut's text is said by a speaker the model knows: the cut's own speaker when the model has
it (held-out cuts of training voices), else a training voice of the same language, taken in
turn (the test sets' voices are unseen). Writes ``OUT/wav/<cut id>.wav`` (at the model's rate),
``OUT/mel/<cut id>.pt`` (log-mel and predicted pitch), ``OUT/mel.json`` (the model's mel format,
``speechkit.tts.mel.TTSMelConfig``, which tts_score and tts_plot read) and
``OUT/synth.jsonl`` (one line per cut: id, text, language, reference audio, reference and
synthesis speakers, seconds), and prints the real-time factor of the acoustic model and of the
vocoder separately (one CPU thread each, as measured). The vocoder is Griffin-Lim (no
``--vocoder``, or ``--vocoder griffin-lim``) unless ``--vocoder`` names a trained one
(``speechkit.synthesize.load_vocoder``: a training directory, checkpoint or packed directory, on
the model's mel format; egs/phrasebook/tts1/RESULTS.md compares the two), or names the codec whose
codes a model with codec targets was trained on (its decoder is then the vocoder). A text the model cannot
say (a sound its training texts never had) is skipped, named, and listed in speed.json.

Unlike ``speechkit synthesize`` (a lhotse corpus of waves), this
keeps what scoring needs: the predicted mel and pitch, the reference recording of each text, and
the acoustic model's and the vocoder's times apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import soundfile as sf
import torch
from tqdm import tqdm

from speechkit.synthesize import (
    GRIFFIN_LIM,
    TTS,
    CodecVocoder,
    GriffinLimVocoder,
    load_vocoder,
    voices_by_language,
)
from speechkit.tasks.base import read_cuts
from speechkit.tts.acoustic import AcousticModel
from speechkit.tts.text import TextError


def _at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``, else a usage error that says so."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit tts-synthesize",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="acoustic model checkpoint (model_avg.pt)")
    p.add_argument("--cuts", required=True, nargs="+", help="cut manifests whose texts to say")
    p.add_argument("--out", required=True, help="synthesis directory to write")
    p.add_argument("--languages", nargs="*", default=[], help="only these (default: all)")
    p.add_argument(
        "--limit", type=_at_least(0), default=0, help="at most this many cuts per language"
    )
    p.add_argument("--gl-iters", type=_at_least(1), default=32)
    p.add_argument(
        "--vocoder", default="", help="a trained vocoder (default, or griffin-lim: Griffin-Lim)"
    )
    p.add_argument(
        "--codec-n-q",
        type=_at_least(0),
        default=0,
        help="a codec vocoder: codebooks to quantise the latent to (default: the model's)",
    )
    p.add_argument(
        "--codec-raw",
        action="store_true",
        help="a codec vocoder: decode the predicted latent as it is, not snapped to codes",
    )
    p.add_argument("--threads", type=_at_least(1), default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not Path(args.model).is_file():
        p.error(f"--model {args.model}: no such file (a tts checkpoint such as model_avg.pt)")
    torch.set_num_threads(args.threads)
    try:
        am = AcousticModel.load(args.model)
        # TTS(...) checks that the vocoder reads the frames the acoustic model writes.
        trained = args.vocoder not in ("", GRIFFIN_LIM)
        if trained:
            vocoder, mel = load_vocoder(args.vocoder)
        else:
            vocoder, mel = GriffinLimVocoder(am.mel, args.gl_iters), None
        if isinstance(vocoder, CodecVocoder):
            vocoder.quantize = not args.codec_raw
            if args.codec_n_q:
                vocoder.n_q = vocoder.codec.n_quantizers(n_q=args.codec_n_q)
        elif args.codec_n_q or args.codec_raw:
            raise ValueError("--codec-n-q and --codec-raw need a codec as --vocoder")
        tts = TTS(am, vocoder, mel)
        cuts = [
            c
            for c in read_cuts(args.cuts)
            if not args.languages or c.supervisions[0].language in args.languages
        ]
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    vocoder = args.vocoder if trained else f"griffin-lim ({args.gl_iters} iterations)"
    if isinstance(tts.vocoder, CodecVocoder):
        codec_form = "latent as predicted" if args.codec_raw else f"{tts.vocoder.n_q} codebooks"
        vocoder_detail = f"codec decoder, {codec_form}"
    else:
        vocoder_detail = ""
    by_lang = voices_by_language(am.speakers)
    # A cut whose speaker the model lacks is said by a voice whose id starts "<language>-".
    unseen = {
        c.supervisions[0].language for c in cuts if c.supervisions[0].speaker not in am.speaker_ids
    }
    if unseen - set(by_lang):
        p.error(
            f"{args.model} has no voice (speaker id '<language>-...') for language(s) "
            f"{', '.join(sorted(map(str, unseen - set(by_lang))))} of cuts by unseen speakers; "
            f"its speakers: {', '.join(am.speakers[:8])}{', ...' if len(am.speakers) > 8 else ''}"
            "; choose the languages with --languages"
        )
    if not cuts:
        p.error(f"no cut to synthesise in {' '.join(args.cuts)} (--languages {args.languages})")
    out = Path(args.out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "mel").mkdir(exist_ok=True)
    (out / "mel.json").write_text(json.dumps(dataclasses.asdict(am.mel)) + "\n")
    taken: dict[str, int] = defaultdict(int)
    rows, skipped, am_seconds, voc_seconds, audio_seconds = [], [], 0.0, 0.0, 0.0
    for cut in tqdm(cuts, desc="synthesis"):
        sup = cut.supervisions[0]
        if args.limit and taken[sup.language] >= args.limit:
            continue
        speaker = sup.speaker if sup.speaker in am.speaker_ids else None
        if speaker is None:
            voices = by_lang[sup.language]
            speaker = voices[taken[sup.language] % len(voices)]
        taken[sup.language] += 1
        t0 = time.perf_counter()
        try:
            syn = am(sup.text, speaker=speaker, language=sup.language)
        except TextError as e:
            skipped.append(f"{cut.id}: {e}")
            print(f"skipped {cut.id}: {e}")
            continue
        t1 = time.perf_counter()
        wave = tts.vocode(tts.vocoder_input(syn))
        t2 = time.perf_counter()
        am_seconds, voc_seconds = am_seconds + t1 - t0, voc_seconds + t2 - t1
        audio_seconds += len(wave) / am.mel.sample_rate
        sf.write(out / "wav" / f"{cut.id}.wav", wave, am.mel.sample_rate)
        torch.save(
            {"mel": syn.mel, "pitch": syn.pitch, "phonemes": syn.phonemes},
            out / "mel" / f"{cut.id}.pt",
        )
        rows.append({
            "id": cut.id, "text": sup.text, "language": sup.language,
            "reference": cut.recording.sources[0].source, "ref_speaker": sup.speaker,
            "syn_speaker": speaker, "event": (cut.custom or {}).get("event", ""),
            "seconds": round(len(wave) / am.mel.sample_rate, 3),
        })  # fmt: skip
    with open(out / "synth.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    if not rows:
        sys.exit(f"{out}: nothing synthesised, every text was skipped: {'; '.join(skipped)}")
    speed = {
        "utterances": len(rows),
        "audio_seconds": round(audio_seconds, 2),
        "rtf_acoustic": round(am_seconds / audio_seconds, 4),
        "rtf_vocoder" if trained else "rtf_griffin_lim": round(voc_seconds / audio_seconds, 4),
        "vocoder": vocoder,
        **({"vocoder_detail": vocoder_detail} if vocoder_detail else {}),
        "threads": args.threads,
        "skipped": skipped,
    }
    (out / "speed.json").write_text(json.dumps(speed, indent=1) + "\n")
    print(json.dumps(speed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
