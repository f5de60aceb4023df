"""Reference vs synthesis log-mel and the pitch contours, one sentence per language -> PNG.

    python local/plot.py --synth exp/fs2_cpu/synth_valid --out mels.png

Takes the first synthesised cut of each language whose synthesis speaker is the reference's
(held-out training cuts), so the two panels are the same voice saying the same sentence (any
cut of the language where there is none; the titles say which). The
pitch panel shows YIN F0 of the reference recording and the acoustic model's predicted contour
(phoneme-level predictions spread over their frames), in Hz.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from score import mel_format  # noqa: E402  (beside this script: the model's mel format)

from speechkit.data.audio import load_audio  # noqa: E402
from speechkit.data.tts import PITCH_REFERENCE_HZ, TTSDataConfig, frame_pitch  # noqa: E402
from speechkit.tts.mel import mel_spectrogram  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--synth", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    synth = Path(args.synth)
    rows = [json.loads(line) for line in (synth / "synth.jsonl").read_text().splitlines()]
    picked: dict = {}
    for same in (True, False):  # same-voice rows first; any row for a language without one
        for r in rows:
            if (r["ref_speaker"] == r["syn_speaker"]) >= same and r["language"] not in picked:
                picked[r["language"]] = r
    if not picked:
        raise SystemExit(f"{synth}: nothing synthesised to plot")
    mel_cfg = mel_format(synth)
    fig, axes = plt.subplots(3, len(picked), figsize=(4.5 * len(picked), 8), squeeze=False)
    for col, (lang, r) in enumerate(sorted(picked.items())):
        ref = load_audio(r["reference"], mel_cfg.sample_rate)
        ref_mel = mel_spectrogram(torch.from_numpy(ref), mel_cfg)[0].numpy()
        syn = torch.load(synth / "mel" / f"{r['id']}.pt")
        ref_pitch, voiced = frame_pitch(ref, mel_cfg, TTSDataConfig())
        for row, (mel, title) in enumerate(
            ((ref_mel, "reference"), (syn["mel"].numpy(), "synthesis"))
        ):
            ax = axes[row, col]
            ax.imshow(mel, origin="lower", aspect="auto", vmin=-11.5, vmax=2, cmap="magma")
            who = r["ref_speaker"] if row == 0 else r["syn_speaker"]
            ax.set_title(f"{lang} {title} ({who}): {r['text'][:30]}", fontsize=7)
            ax.set_ylabel("mel bin")
        ax = axes[2, col]
        t_ref = np.arange(len(ref_pitch)) * mel_cfg.frame_seconds
        ax.plot(t_ref, np.where(voiced, PITCH_REFERENCE_HZ * 2.0 ** ref_pitch, np.nan), ".", ms=3,
                label="reference F0 (YIN)")  # fmt: skip
        pred = PITCH_REFERENCE_HZ * 2.0 ** syn["pitch"].numpy()
        ax.plot(np.arange(len(pred)) * mel_cfg.frame_seconds, pred, label="predicted pitch")
        ax.set_xlabel("seconds")
        ax.set_ylabel("Hz")
        ax.legend(fontsize=7)
    fig.suptitle(str(synth), fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
