"""Synthesises the texts of a cut set with a trained acoustic model and Griffin-Lim (or a
trained vocoder).

    python local/synthesize.py --model exp/fs2_cpu/model_avg.pt --cuts data/tts/cuts_test.jsonl.gz \\
        --out exp/fs2_cpu/synth_test --languages eng --limit 60 [--vocoder exp/vocoder]

Each cut's text is said by a speaker the model knows: the cut's own speaker when the model has
it (held-out cuts of training voices), else a training voice of the same language, taken in
turn (the test sets' voices are unseen). Writes ``OUT/wav/<cut id>.wav`` (at the model's rate),
``OUT/mel/<cut id>.pt`` (log-mel and predicted pitch), ``OUT/mel.json`` (the model's mel format,
``speechkit.tts.mel.TTSMelConfig``, which local/score.py and local/plot.py read) and
``OUT/synth.jsonl`` (one line per cut: id, text, language, reference audio, reference and
synthesis speakers, seconds), and prints the real-time factor of the acoustic model and of the
vocoder separately (one CPU thread each, as measured). The vocoder is Griffin-Lim unless
``--vocoder`` names a trained one (``speechkit.synthesize.load_vocoder``: a training directory,
checkpoint or packed directory, on the model's mel format): on the phrasebook the CPU-trained
vocoder is still worse than Griffin-Lim (RESULTS.md). A text the model cannot say (a sound its
training texts never had) is skipped, named, and listed in speed.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

import soundfile as sf
import torch
from tqdm import tqdm

from speechkit.synthesize import TTS, load_vocoder
from speechkit.tasks.base import read_cuts
from speechkit.tts.acoustic import AcousticModel
from speechkit.tts.mel import griffin_lim
from speechkit.tts.text import TextError


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True)
    p.add_argument("--cuts", required=True, nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--languages", nargs="*", default=[], help="only these (default: all)")
    p.add_argument("--limit", type=int, default=0, help="at most this many cuts per language")
    p.add_argument("--gl-iters", type=int, default=32)
    p.add_argument("--vocoder", default="", help="a trained vocoder (default: Griffin-Lim)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    am = AcousticModel.load(args.model)
    out = Path(args.out)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    (out / "mel").mkdir(exist_ok=True)
    (out / "mel.json").write_text(json.dumps(dataclasses.asdict(am.mel)) + "\n")
    # TTS(...) checks that the vocoder reads the frames the acoustic model writes.
    tts = TTS(am, *load_vocoder(args.vocoder)) if args.vocoder else None
    vocoder = args.vocoder or f"griffin-lim ({args.gl_iters} iterations)"
    by_lang = defaultdict(list)
    for s in am.speakers:
        by_lang[s.split("-")[0]].append(s)
    taken: dict[str, int] = defaultdict(int)
    rows, skipped, am_seconds, voc_seconds, audio_seconds = [], [], 0.0, 0.0, 0.0
    cuts = [
        c
        for c in read_cuts(args.cuts)
        if not args.languages or c.supervisions[0].language in args.languages
    ]
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
        if tts is not None:
            wave = tts.vocode(syn.mel)
        else:
            wave = griffin_lim(syn.mel, am.mel, n_iter=args.gl_iters)[0].numpy()
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
    speed = {
        "utterances": len(rows),
        "audio_seconds": round(audio_seconds, 2),
        "rtf_acoustic": round(am_seconds / audio_seconds, 4),
        "rtf_vocoder" if tts else "rtf_griffin_lim": round(voc_seconds / audio_seconds, 4),
        "vocoder": vocoder,
        "threads": args.threads,
        "skipped": skipped,
    }
    (out / "speed.json").write_text(json.dumps(speed, indent=1) + "\n")
    print(json.dumps(speed))


if __name__ == "__main__":
    main()
