"""Does Whisper need its 30 s window? Greedy WER of a zoo model on English test cuts with the
input padded to 30 s (as ``speechkit transcribe`` decodes) and unpadded (the encoder sees only
the utterance's frames; ``WhisperModel`` allows it by slicing its positions).

    python local/padding_check.py --data ../s2t1/data/phrasebook [--model whisper-tiny.en]
"""

from __future__ import annotations

import argparse
import time

import torch
from lhotse import CutSet

from speechkit import zoo
from speechkit.decode import greedy_search
from speechkit.inference import TranscribeOptions, Transcriber
from speechkit.metrics import wer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="phrasebook corpus directory")
    p.add_argument("--model", default="whisper-tiny.en")
    p.add_argument("--every", type=int, default=4, help="take every N-th English test cut")
    p.add_argument("--max-new-tokens", type=int, default=48)
    args = p.parse_args()
    pre = zoo.load(args.model)
    tr = Transcriber(
        pre, TranscribeOptions(beam=1, language="en", max_new_tokens=args.max_new_tokens)
    )
    sets = [CutSet.from_file(f"{args.data}/cuts_{s}.jsonl.gz") for s in ("test_seen", "test_novel")]
    cuts = [c for s in sets for c in s if c.supervisions[0].language == "eng"][:: args.every]
    waves = [c.load_audio()[0] for c in cuts]
    refs = [c.supervisions[0].text for c in cuts]
    start = time.time()
    padded = [r.text for r in tr(waves)]
    padded_s, start = time.time() - start, time.time()
    unpadded, lengths = [], []
    prefix = torch.tensor([pre.tokenizer.sot_sequence("eng", "asr")])
    with torch.inference_mode():
        for wave in waves:
            feats = tr.features(wave)[:-1][None]  # content frames only, no 30 s padding
            enc, enc_lens = pre.model.encode(feats, torch.tensor([feats.shape[1]]))
            best = greedy_search(pre.model, enc, enc_lens, prefix, tr.search_opts, tr.ids, tr.rules)
            lengths.append(len(best[0][0].tokens))
            unpadded.append(pre.tokenizer.decode(best[0][0].tokens))
    print(f"{args.model}, greedy, {len(cuts)} English test utterances")
    print(f"padded to 30 s: WER {wer(refs, padded).rate:.1f} % ({padded_s:.0f} s)")
    print(
        f"unpadded:       WER {wer(refs, unpadded).rate:.1f} % ({time.time() - start:.0f} s);"
        f" tokens per hypothesis {lengths} (cap {args.max_new_tokens})"
    )
    for ref, a, b in zip(refs, padded, unpadded):
        print(f"REF {ref!r}\n  padded   {a!r}\n  unpadded {b!r}")


if __name__ == "__main__":
    main()
