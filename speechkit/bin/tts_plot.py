"""Reference vs synthesis log-mel and the pitch contours, one sentence per language -> PNG (the
picture of the TTS recipes' scoring stage, egs/phrasebook/tts1 and egs/ljspeech/tts1).
Rows: the reference's log-mel, the acoustic model's predicted log-mel, the log-mel of the
vocoded synthesis (what a listener hears: harmonics the vocoder restored or lost), pitch.

Usage::

    python -m speechkit.bin.tts_plot --synth exp/fs2_cpu/synth_valid --out mels.png
                                            # or: speechkit tts-plot ...

Reads a synthesis directory of ``speechkit.bin.tts_synthesize``. Needs matplotlib (the ``plot``
extra: ``pip install '.[plot]'``).

Takes the first synthesised cut of each language whose synthesis speaker is the reference's
(held-out training cuts), so the two panels are the same voice saying the same sentence (any
cut of the language where there is none; the titles say which). The
pitch panel shows YIN F0 of the reference recording and of the vocoded synthesis (voiced frames
only) and the acoustic model's predicted contour (phoneme-level predictions spread over their
frames), in Hz.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from speechkit.bin.tts_score import mel_format, read_synthesis
from speechkit.data.audio import load_audio
from speechkit.data.tts import PITCH_REFERENCE_HZ, TTSDataConfig, frame_pitch
from speechkit.tts.mel import mel_spectrogram


def pick(rows: list[dict]) -> dict[str, dict]:
    """{language: the row to draw}: its first same-voice row, else its first row."""
    picked: dict = {}
    for same in (True, False):  # same-voice rows first; any row for a language without one
        for r in rows:
            if (r["ref_speaker"] == r["syn_speaker"]) >= same and r["language"] not in picked:
                picked[r["language"]] = r
    return picked


def drawn(synth: Path, r: dict, mel_cfg) -> tuple[dict, dict]:
    """What one column shows: ({title: log-mel (M, T)} for the reference recording, the
    predicted mel and the vocoded synthesis; {label: Hz per frame (T,), NaN where unvoiced}
    for YIN on the recording and on the synthesis, and the predicted pitch)."""
    ref = load_audio(r["reference"], mel_cfg.sample_rate)
    heard = load_audio(synth / "wav" / f"{r['id']}.wav", mel_cfg.sample_rate)
    syn = torch.load(synth / "mel" / f"{r['id']}.pt")
    panels = {
        "reference": mel_spectrogram(torch.from_numpy(ref), mel_cfg)[0].numpy(),
        "predicted mel": syn["mel"].numpy(),
        "vocoded synthesis": mel_spectrogram(torch.from_numpy(heard), mel_cfg)[0].numpy(),
    }
    pitch = {}
    for label, wave in (("reference F0 (YIN)", ref), ("synthesis F0 (YIN)", heard)):
        f0, voiced = frame_pitch(wave, mel_cfg, TTSDataConfig())
        pitch[label] = np.where(voiced, PITCH_REFERENCE_HZ * 2.0**f0, np.nan)
    pitch["predicted pitch"] = PITCH_REFERENCE_HZ * 2.0 ** syn["pitch"].numpy()
    return panels, pitch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit tts-plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--synth", required=True, help="directory written by speechkit.bin.tts_synthesize"
    )
    p.add_argument("--out", required=True, help="the PNG to write")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    synth = Path(args.synth)
    rows = read_synthesis(p, synth)
    try:  # the plot extra, not the core install
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit(f"tts-plot needs matplotlib: pip install '.[plot]' ({e})") from None
    picked = pick(rows)
    mel_cfg = mel_format(synth)
    fig, axes = plt.subplots(4, len(picked), figsize=(4.5 * len(picked), 10.5), squeeze=False)
    for col, (lang, r) in enumerate(sorted(picked.items())):
        panels, pitch = drawn(synth, r, mel_cfg)
        for row, (title, mel) in enumerate(panels.items()):
            ax = axes[row, col]
            ax.imshow(mel, origin="lower", aspect="auto", vmin=-11.5, vmax=2, cmap="magma")
            who = r["ref_speaker"] if row == 0 else r["syn_speaker"]
            ax.set_title(f"{lang} {title} ({who}): {r['text'][:30]}", fontsize=7)
            ax.set_ylabel("mel bin")
        ax = axes[3, col]
        for label, hz in pitch.items():
            t = np.arange(len(hz)) * mel_cfg.frame_seconds
            ax.plot(t, hz, "-" if label == "predicted pitch" else ".", ms=3, label=label)
        ax.set_xlabel("seconds")
        ax.set_ylabel("Hz")
        ax.legend(fontsize=7)
    fig.suptitle(str(synth), fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
