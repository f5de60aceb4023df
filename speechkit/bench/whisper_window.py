"""Does Whisper need its 30 s window? Greedy WER of a Whisper model with the input padded to 30 s
(as ``speechkit transcribe`` decodes) and unpadded (the encoder sees only the utterance's frames;
``WhisperModel`` allows it by slicing its positions).

    speechkit bench whisper-window --cuts data/cuts_test.jsonl.gz [--language eng] [--every 4]
    speechkit bench whisper-window --audio-dir wavs --text wavs/text [--model whisper-tiny.en]

(or ``python -m speechkit.bench.whisper_window ...``). Test sets as in ``speechkit.bench.testset``:
every ``--every``-th utterance of the ``--language`` cuts of the manifests, or of a directory of
audio files with a Kaldi-style reference list. Prints both WERs, decoding seconds, the length of
each unpadded hypothesis (a hypothesis at ``--max-new-tokens`` ran into the cap), and every
reference with its two hypotheses.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from speechkit.bench import testset
from speechkit.decode import greedy_search
from speechkit.inference import TranscribeOptions, Transcriber
from speechkit.metrics import wer


@dataclass
class WindowResult:
    refs: list[str]
    padded: list[str]  # hypotheses from 30 s windows
    unpadded: list[str]  # hypotheses from the utterance's own frames
    lengths: list[int]  # tokens of each unpadded hypothesis
    padded_s: float  # decoding wall seconds
    unpadded_s: float


def compare(tr: Transcriber, waves: list, refs: list[str], language: str) -> WindowResult:
    """Greedy hypotheses of ``tr`` (beam 1) for ``waves`` (float32 (S,), 16 kHz), both ways."""
    start = time.time()
    padded = [r.text for r in tr(waves)]
    padded_s, start = time.time() - start, time.time()
    unpadded, lengths = [], []
    prefix = torch.tensor([tr.tok.sot_sequence(language, "asr")])
    with torch.inference_mode():
        for wave in waves:
            feats = tr.features(wave)[:-1][None]  # content frames only, no 30 s padding
            enc, enc_lens = tr.model.encode(feats, torch.tensor([feats.shape[1]]))
            best = greedy_search(tr.model, enc, enc_lens, prefix, tr.search_opts, tr.ids, tr.rules)
            lengths.append(len(best[0][0].tokens))
            unpadded.append(tr.tok.decode(best[0][0].tokens))
    return WindowResult(refs, padded, unpadded, lengths, padded_s, time.time() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit bench whisper-window", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="whisper-tiny.en", help="zoo name or packed directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cuts", nargs="+", type=Path, help="lhotse cut manifest(s)")
    src.add_argument("--audio-dir", type=Path, help="audio files <utt-id>.<ext> (with --text)")
    p.add_argument("--text", type=Path, help="Kaldi-style reference list of --audio-dir")
    p.add_argument("--language", default="eng", help="spoken language (ISO 639-3)")
    p.add_argument("--every", type=int, default=4, help="take every N-th utterance")
    p.add_argument("--max-new-tokens", type=int, default=48)
    args = p.parse_args(argv)
    if bool(args.audio_dir) != bool(args.text):
        p.error("--audio-dir and --text go together")

    if args.audio_dir:
        sets = [testset.from_audio_dir(args.audio_dir, args.text, args.language)]
    else:
        sets = [testset.from_cuts(c, args.language) for c in args.cuts]
    waves = [w for s in sets for w in s.waves][:: args.every]
    refs = [r for s in sets for r in s.refs][:: args.every]
    opts = TranscribeOptions(beam=1, language=args.language, max_new_tokens=args.max_new_tokens)
    tr = Transcriber.load(args.model, opts)
    r = compare(tr, waves, refs, args.language)
    print(f"{args.model}, greedy, {len(waves)} {args.language} utterances")
    print(f"padded to 30 s: WER {wer(refs, r.padded).rate:.1f} % ({r.padded_s:.0f} s)")
    print(
        f"unpadded:       WER {wer(refs, r.unpadded).rate:.1f} % ({r.unpadded_s:.0f} s);"
        f" tokens per hypothesis {r.lengths} (cap {args.max_new_tokens})"
    )
    for ref, a, b in zip(refs, r.padded, r.unpadded):
        print(f"REF {ref!r}\n  padded   {a!r}\n  unpadded {b!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
