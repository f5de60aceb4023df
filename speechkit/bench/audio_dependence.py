"""Does the decoder listen? Teacher-forced accuracy with the real features vs. zeroed features.

An attention decoder trained on a predictable grammar first learns the text alone (a language
model) and only later attends to the encoder. While the two accuracies below are equal, the
model transcribes from its prior, not from the audio; the CTC greedy output shows what the
encoder has learnt on its own::

    speechkit bench audio-dependence --model exp/run/model_avg.pt \
        --cuts data/cuts_dev.jsonl.gz [--num-cuts 32]

(or ``python -m speechkit.bench.audio_dependence ...``). ``--model``: an S2T model with a CTC
head (packed directory or checkpoint); ``--cuts``: any lhotse manifest with transcripts.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import torch
from lhotse import CutSet

from speechkit.data import DataConfig, S2TDataset, SpecAugConfig
from speechkit.pretrained import Pretrained, load_pretrained

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


@dataclass
class Dependence:
    """What ``measure`` finds. Accuracies are teacher-forced decoder token accuracies (0-1)."""

    acc_real: float  # with the cuts' features
    acc_zeroed: float  # with every feature zeroed: the decoder's prior alone
    ctc_loss: float  # per token, real features
    frame: int  # encoder frame compared across utterances
    spread: float  # std of the encoder output at ``frame`` across utterances, mean over dims
    greedy: list[tuple[str, str]]  # (CTC best path, reference) of the first 3 utterances


def measure(pre: Pretrained, cuts: CutSet) -> Dependence:
    """Runs ``pre``'s S2T model on ``cuts`` (one batch, no SpecAugment)."""
    tasks = pre.tasks or {}  # the tasks it was trained for, when the model records them
    data_cfg = DataConfig(features=pre.features, specaug=SpecAugConfig(enabled=False), **tasks)
    batch = S2TDataset(pre.tokenizer, data_cfg, train=False)[cuts]
    inputs = [batch[k] for k in INPUTS]
    with torch.inference_mode():
        real = pre.model(*inputs, target_utt=batch["target_utt"])
        silent = pre.model(torch.zeros_like(inputs[0]), *inputs[1:], target_utt=batch["target_utt"])
        enc, lens = pre.model.encode(batch["feats"], batch["feat_lens"])
        frame = int(lens.min()) // 2  # a frame every utterance has
        spread = float(enc[:, frame].std(0).mean())
        hyps = ctc_greedy(pre.model, batch, pre.tokenizer, 3)
    refs = {c.id: c.supervisions[0].text for c in cuts}
    return Dependence(
        acc_real=float(real["acc"]),
        acc_zeroed=float(silent["acc"]),
        ctc_loss=float(real["loss_ctc"]),
        frame=frame,
        spread=spread,
        greedy=[(h, refs[i]) for h, i in zip(hyps, batch["cut_ids"])],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="speechkit bench audio-dependence", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", required=True, help="packed model directory or checkpoint .pt")
    p.add_argument("--cuts", required=True, help="lhotse cut manifest with transcripts")
    p.add_argument("--num-cuts", type=int, default=32, help="the first N cuts, one batch")
    args = p.parse_args(argv)

    pre = load_pretrained(args.model)
    if pre.model_type != "s2t":
        raise SystemExit(f"{args.model}: a {pre.model_type} model; this needs an S2T model")
    d = measure(pre, CutSet.from_file(args.cuts).subset(first=args.num_cuts))
    print(f"teacher-forced accuracy, real features:   {d.acc_real:.3f}")
    print(f"teacher-forced accuracy, zeroed features: {d.acc_zeroed:.3f}")
    print(f"CTC loss per token: {d.ctc_loss:.3f}")
    print(f"encoder output at frame {d.frame}, std across utterances: {d.spread:.2e}")
    for hyp, ref in d.greedy:
        print(f"CTC greedy: {hyp!r}  | reference: {ref!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
