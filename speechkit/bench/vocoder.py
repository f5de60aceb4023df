"""TTS vocoder against Griffin-Lim on reference mels (copy synthesis): PESQ, STOI, mel distance, RTF.

    speechkit bench vocoder --vocoder exp/vocoder --cuts data/cuts_test_seen.jsonl.gz \\
        [--limit 40] [--gl-iters 32] [--threads 1 2] [--png spec.png] [--results-md RESULTS.md]
    speechkit bench vocoder --vocoder exp/vocoder --audio-dir wavs/ --text wavs/text   # any audio

Each utterance (16 kHz; the first ``--limit`` of the manifest or reference list) is turned into
the TTS log-mel (``speechkit.tts.mel``) and back into a wave by two systems:

* ``speechkit vocoder``: the frame-level vocoder (``speechkit.models.vocoder``);
* ``Griffin-Lim``: the mel inverted to a linear magnitude by least squares
  (``torchaudio.transforms.InverseMelScale``) and ``torchaudio.transforms.GriffinLim`` with
  ``--gl-iters`` iterations: what one gets without a trained vocoder.

Each output is compared with the original: PESQ (wideband, P.862.2; ``pesq``), STOI
(``pystoi``), and the mel distance (mean L1 of the TTS log-mel over frames and bands, natural
log: the vocoder task's validation loss). Speed: for each of ``--threads``, the systems run
interleaved utterance by utterance (after one warm-up each) and the benchmark prints the median
RTF (seconds of compute per second of audio) and its inverse, RTFx (times faster than real
time), and the ratio of the two systems' medians. ``--png`` draws the spectrograms of the first
utterance: original, vocoder, Griffin-Lim.
"""

from __future__ import annotations

import os

# OpenMP threads that spin-wait stall every small op on a busy machine (more busy processes
# than cores): passive waiting, as speechkit transcribe sets it. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402

from speechkit.bench import add_cite_argument, cited_command, read_paths_line, testset  # noqa: E402
from speechkit.report import provenance_lines, update_markdown  # noqa: E402
from speechkit.tts.mel import TTSMelConfig, mel_spectrogram  # noqa: E402

SR = 16000


class GriffinLimVocoder:
    """Log-mel (n_mels, T) -> wave (T * hop,): least-squares inverse mel, then Griffin-Lim."""

    def __init__(self, mel: TTSMelConfig, n_iter: int):
        self.cfg = mel
        self.inverse = torchaudio.transforms.InverseMelScale(
            mel.n_fft // 2 + 1,
            mel.n_mels,
            mel.sample_rate,
            mel.f_min,
            mel.f_max,
            norm="slaney",
            mel_scale="slaney",
        )
        self.gl = torchaudio.transforms.GriffinLim(
            mel.n_fft, n_iter, mel.win_length, mel.hop_length, power=1.0
        )

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        mag = self.inverse(mel.exp())  # (F, T) linear magnitude
        return self.gl(mag)[: mel.size(-1) * self.cfg.hop_length]


def mel_distance(wave: np.ndarray, ref: np.ndarray, mel: TTSMelConfig) -> float:
    """Mean |log-mel(wave) - log-mel(ref)| over the reference's frames and bands."""
    n = len(ref)
    w = np.pad(wave[:n], (0, max(0, n - len(wave))))
    a = mel_spectrogram(torch.from_numpy(w).float(), mel)
    b = mel_spectrogram(torch.from_numpy(ref).float(), mel)
    return float((a - b).abs().mean())


def quality(wave: np.ndarray, ref: np.ndarray, mel: TTSMelConfig) -> dict[str, float]:
    from pesq import pesq
    from pystoi import stoi

    n = len(ref)
    w = np.pad(wave[:n], (0, max(0, n - len(wave)))).astype(np.float64)
    try:
        p = float(pesq(SR, ref.astype(np.float64), w, "wb"))
    except Exception:  # noqa: BLE001 - pesq refuses e.g. utterances without speech
        p = float("nan")
    return {
        "pesq": p,
        "stoi": float(stoi(ref, w, SR, extended=False)),
        "mel_dist": mel_distance(wave, ref, mel),
    }


def _timed(fn, mel: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(mel)
    return time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit bench vocoder", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    p.add_argument("--vocoder", required=True, help="vocoder training dir, checkpoint or packed")
    p.add_argument("--cuts", help="lhotse cut manifest of reference audio")
    p.add_argument("--audio-dir", help="directory of audio files (with --text)")
    p.add_argument("--text", help="Kaldi-style reference list naming the --audio-dir files")
    p.add_argument("--language", default="eng", help="language of the cuts to take")
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--gl-iters", type=int, default=32)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--png", type=Path, help="spectrograms of the first utterance")
    p.add_argument("--results-md", help="write the figures as a section of this markdown file")
    add_cite_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from speechkit.synthesize import load_vocoder

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if bool(args.cuts) == bool(args.audio_dir):
        raise SystemExit("give --cuts, or --audio-dir with --text")
    if args.cuts:
        data = testset.from_cuts(args.cuts, args.language, limit=args.limit)
    else:
        data = testset.from_audio_dir(args.audio_dir, args.text, limit=args.limit)
    vocoder, mel_cfg = load_vocoder(args.vocoder)
    systems = {
        "speechkit vocoder": lambda m: vocoder.vocode(m),
        f"Griffin-Lim ({args.gl_iters} it.)": GriffinLimVocoder(mel_cfg, args.gl_iters),
    }
    refs = [w.astype(np.float32) for w in data.waves]
    mels = [mel_spectrogram(torch.from_numpy(w), mel_cfg)[0] for w in refs]  # (n_mels, T)
    seconds = [len(w) / SR for w in refs]

    torch.set_num_threads(1)
    scores = {name: [] for name in systems}
    panels = [("original", refs[0])]
    for i, (ref, mel) in enumerate(zip(refs, mels)):
        for name, fn in systems.items():
            wave = fn(mel).numpy()
            scores[name].append(quality(wave, ref, mel_cfg))
            if i == 0:
                panels.append((name, wave[: len(ref)]))
    if args.png:
        from speechkit.bench.codec import spectrogram_png

        args.png.parent.mkdir(parents=True, exist_ok=True)
        spectrogram_png(args.png, panels)

    rtf = {(name, t): [] for name in systems for t in args.threads}
    for t in args.threads:
        torch.set_num_threads(t)
        for fn in systems.values():
            fn(mels[0])  # warm-up
        for mel, sec in zip(mels, seconds):
            for name, fn in systems.items():
                rtf[(name, t)].append(_timed(fn, mel) / sec)

    lines = [
        f"Copy synthesis of {len(refs)} utterances ({sum(seconds):.1f} s, {data.name}) from the "
        f"TTS log-mel; vocoder: `{args.vocoder}` "
        f"({sum(p.numel() for p in vocoder.parameters()) / 1e6:.2f} M parameters).",
        "",
        "| system | PESQ (wb) | STOI | mel distance | "
        + " | ".join(f"RTF {t} thr. (RTFx)" for t in args.threads)
        + " |",
        "|---|---|---|---|" + "---|" * len(args.threads),
    ]
    for name in systems:
        s = scores[name]
        mean = {k: float(np.nanmean([x[k] for x in s])) for k in s[0]}
        speed = [statistics.median(rtf[(name, t)]) for t in args.threads]
        lines.append(
            f"| {name} | {mean['pesq']:.2f} | {mean['stoi']:.3f} | {mean['mel_dist']:.3f} | "
            + " | ".join(f"{r:.4f} ({1 / r:.0f}x)" for r in speed)
            + " |"
        )
    names = list(systems)
    ratio = [
        statistics.median(rtf[(names[1], t)]) / statistics.median(rtf[(names[0], t)])
        for t in args.threads
    ]
    lines += [
        "",
        "Medians over utterances, systems interleaved per utterance; the vocoder is "
        + ", ".join(
            f"{r:.1f}x faster than Griffin-Lim on {t} thread(s)"
            for r, t in zip(ratio, args.threads)
        )  # fmt: skip
        + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if args.results_md:
        command = cited_command("vocoder", argv, args.cite_path)
        png = []
        if args.png:
            rel = os.path.relpath(args.png.resolve(), Path(args.results_md).resolve().parent)
            png = [f"- spectrograms (first utterance): ![spectrograms]({rel})"]
        section = "\n".join(
            [
                "## Vocoder: copy synthesis",
                "",
                text,
                "",
                *png,
                *provenance_lines(command),
                *read_paths_line(args.cite_path),
                "",
            ]  # fmt: skip
        )
        update_markdown(Path(args.results_md), "Vocoder: copy synthesis", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
