"""Does the decoder listen? Teacher-forced accuracy with the real features vs. zeroed features.

An attention decoder trained on a predictable grammar first learns the text alone (a language
model) and only later attends to the encoder. While the two accuracies below are equal, the
model transcribes from its prior, not from the audio; the CTC greedy output shows what the
encoder has learnt on its own::

    python local/audio_dependence.py --model exp/s2t_tiny/model_avg.pt \
        --cuts data/phrasebook/cuts_dev.jsonl.gz --num-cuts 32
"""

from __future__ import annotations

import argparse
import sys

import torch
from lhotse import CutSet

from speechkit.data import DataConfig, S2TDataset, SpecAugConfig
from speechkit.pretrained import load_pretrained

INPUTS = ("feats", "feat_lens", "ys_in", "ys_out", "ctc_targets", "ctc_target_lens")


def ctc_greedy(model, batch, tokenizer, n: int) -> list[str]:
    """Best-path CTC transcripts of the first ``n`` utterances."""
    enc, lens = model.encode(batch["feats"], batch["feat_lens"])
    best = model.ctc_log_probs(enc).argmax(-1)
    texts = []
    for row, length in zip(best[:n], lens[:n]):
        ids = row[:length].tolist()
        kept = [
            t for i, t in enumerate(ids) if t != tokenizer.blank_id and (i == 0 or t != ids[i - 1])
        ]
        texts.append(tokenizer.decode(kept))
    return texts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="packed model directory or checkpoint .pt")
    p.add_argument("--cuts", required=True)
    p.add_argument("--num-cuts", type=int, default=32)
    args = p.parse_args()

    pre = load_pretrained(args.model)
    cuts = CutSet.from_file(args.cuts).subset(first=args.num_cuts)
    tasks = pre.tasks or {}  # the tasks it was trained for, when the model records them
    data_cfg = DataConfig(features=pre.features, specaug=SpecAugConfig(enabled=False), **tasks)
    batch = S2TDataset(pre.tokenizer, data_cfg, train=False)[cuts]
    inputs = [batch[k] for k in INPUTS]
    with torch.inference_mode():
        real = pre.model(*inputs, target_utt=batch["target_utt"])
        silent = pre.model(torch.zeros_like(inputs[0]), *inputs[1:], target_utt=batch["target_utt"])
        print(f"teacher-forced accuracy, real features:   {real['acc']:.3f}")
        print(f"teacher-forced accuracy, zeroed features: {silent['acc']:.3f}")
        print(f"CTC loss per token: {real['loss_ctc']:.3f}")
        enc, lens = pre.model.encode(batch["feats"], batch["feat_lens"])
        frame = int(lens.min()) // 2  # a frame every utterance has
        spread = enc[:, frame].std(0).mean()
        print(f"encoder output at frame {frame}, std across utterances: {spread:.2e}")
        for cut, hyp in zip(cuts, ctc_greedy(pre.model, batch, pre.tokenizer, 3)):
            print(f"CTC greedy: {hyp!r}  | reference: {cut.supervisions[0].text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
