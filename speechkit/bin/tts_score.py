"""Scores a synthesis directory of ``speechkit.bin.tts_synthesize`` against its reference
recordings (the scoring stage of the TTS recipes, egs/phrasebook/tts1 and egs/ljspeech/tts1).

Usage::

    python -m speechkit.bin.tts_score --synth exp/fs2_cpu/synth_valid --whisper whisper-tiny.en \\
        [--results-md RESULTS.md --title "fs2: test" --command "./run.sh ..."]
                                            # or: speechkit tts-score ...

* intelligibility: WER of Whisper on the English synthesis and on the reference recordings of
  the same sentences (``speechkit.metrics.wer``: normalised text), and their ratio;
* mel-cepstral distortion (dB): 13 cepstra of the speechkit.tts.mel log-mel (``cepstra``, c0 left out),
  synthesis and reference aligned by DTW; a speechkit figure, not comparable with SPTK's MCD;
* F0 error: RMS difference in cents of YIN F0 (speechkit.data.tts.frame_pitch) on DTW-aligned
  frames voiced in both, and the voicing disagreement rate.

* Griffin-Lim floor: the same Whisper WER on the reference recordings passed through the mel and
  Griffin-Lim (what the vocoder alone costs);
* the engines beside it (``--engines``): each English text spoken cleanly by the engine the
  synthesis voice imitates (espeak-ng with the voice's variant, pitch and rate, or Piper with its
  length and pitch), timed (real-time factor) and transcribed the same way.

Both spectral figures compare the synthesis with the recording of the same sentence; they mean
"same speaker" only where ``ref_speaker == syn_speaker`` (held-out training cuts), and are
reported apart for those rows. The log-mel (and so the cepstra and the Griffin-Lim floor) is the
acoustic model's own format, ``SYNTH/mel.json`` (16 kHz, the phrasebook's, where it is absent).
Writes ``SYNTH/scores.json`` and prints it; ``--results-md`` also writes the figures, with the
vocoder and speed of ``SYNTH/speed.json`` and the command, as a section of that markdown file.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import torch
from scipy.fft import dct
from tqdm import tqdm

from speechkit.data.audio import load_audio
from speechkit.data.phrasebook.voices import PiperSpeaker, Speaker, synthesize
from speechkit.data.tts import TTSDataConfig, frame_pitch
from speechkit.inference import Transcriber
from speechkit.metrics import wer
from speechkit.report import provenance_lines, update_markdown
from speechkit.tts.mel import TTSMelConfig, griffin_lim, mel_spectrogram


def mel_format(synth: Path) -> TTSMelConfig:
    """The acoustic model's log-mel format, as tts_synthesize recorded it in ``mel.json``."""
    path = synth / "mel.json"
    return TTSMelConfig(**json.loads(path.read_text())) if path.is_file() else TTSMelConfig()


def cepstra(wave: np.ndarray, mel: TTSMelConfig) -> np.ndarray:
    """Cepstra c_1..c_13 (13, T): c_k = (1/M) sum_n log-mel_n cos(pi k (n + 1/2) / M), so that
    log-mel ~= c_0 + 2 sum_k c_k cos(...) as in the usual cepstrum convention."""
    log_mel = mel_spectrogram(torch.from_numpy(wave), mel)[0].numpy()  # (M, T)
    return dct(log_mel, type=2, axis=0)[1:14] / (2 * log_mel.shape[0])


def spectral_errors(
    ref: np.ndarray, syn: np.ndarray, mel: TTSMelConfig
) -> tuple[float, float, float]:
    """(MCD dB, F0 RMSE cents, voicing disagreement) of ``syn`` against ``ref`` (both at
    ``mel.sample_rate``)."""
    c_ref, c_syn = cepstra(ref, mel), cepstra(syn, mel)
    _, path = librosa.sequence.dtw(X=c_ref, Y=c_syn, metric="euclidean")
    i, j = path[::-1, 0], path[::-1, 1]
    diff = c_ref[:, i] - c_syn[:, j]
    mcd = float(np.mean(10 / math.log(10) * np.sqrt(2 * (diff**2).sum(0))))
    cfg = TTSDataConfig()
    p_ref, v_ref = frame_pitch(ref, mel, cfg)
    p_syn, v_syn = frame_pitch(syn, mel, cfg)
    i, j = np.minimum(i, len(p_ref) - 1), np.minimum(j, len(p_syn) - 1)
    both = v_ref[i] & v_syn[j]
    cents = 1200 * (p_ref[i] - p_syn[j])[both]
    f0 = float(np.sqrt(np.mean(cents**2))) if both.any() else float("nan")
    return mcd, f0, float(np.mean(v_ref[i] != v_syn[j]))


def engine_voice(speaker_id: str) -> Speaker | PiperSpeaker:
    """The phrasebook voice behind a speaker id: ``eng-m3-p50-s155`` (espeak-ng variant m3,
    pitch 50, rate 155) or ``eng-piper-joe-l1.00-p1.00`` (Piper, length 1.0, pitch 1.0)."""
    parts = speaker_id.split("-")
    if parts[1] == "piper":
        return PiperSpeaker(parts[0], float(parts[3][1:]), float(parts[4][1:]))
    return Speaker(parts[0], parts[1], int(parts[2][1:]), int(parts[3][1:]))


def engine_scores(english: list[dict], asr: Transcriber) -> dict:
    """WER and RTF of the engines themselves on the English texts (module docstring)."""
    out = {}
    for engine in ("espeak", "piper"):
        rows = [r for r in english if ("-piper-" in r["syn_speaker"]) == (engine == "piper")]
        if not rows:
            continue
        synthesize(rows[0]["text"], engine_voice(rows[0]["syn_speaker"]))  # load Piper untimed
        waves, seconds = [], 0.0
        for r in rows:
            t0 = time.perf_counter()
            waves.append(synthesize(r["text"], engine_voice(r["syn_speaker"])))
            seconds += time.perf_counter() - t0
        hyps = [x.text for x in asr(waves)]
        audio = sum(len(w) for w in waves) / 16000
        ours = wer([r["text"] for r in rows], [r["asr_synthesis"] for r in rows]).rate
        out[engine] = {
            "utterances": len(rows),
            "wer_engine": round(wer([r["text"] for r in rows], hyps).rate, 2),
            "wer_speechkit_same_voices": round(ours, 2),
            "rtf_engine": round(seconds / audio, 4),
        }
    return out


def markdown(title: str, scores: dict, speed: dict, judge: str, command: str) -> str:
    """The ``## title`` section of RESULTS.md: the WER line, the spectral line, how it was made."""
    lines = [f"## {title}", ""]
    if "wer_synthesis" in scores:
        lines += [
            f"WER (%) of {judge} on the {scores['english_utterances']} English utterances, text "
            'normalised by `speechkit.metrics.wer`; "GL floor": the reference recordings '
            "through the model's log-mel and Griffin-Lim (what the vocoder alone costs).",
            "",
            "| judge | utts | WER synthesis | WER reference recordings | ratio | GL floor |",
            "|---|---:|---:|---:|---:|---:|",
            f"| {judge} | {scores['english_utterances']} | {scores['wer_synthesis']} | "
            f"{scores['wer_reference']} | {scores['wer_ratio']} | "
            f"{scores['wer_reference_griffin_lim']} |",
            "",
        ]
    lines += [
        "Against the recording of the same sentence, DTW-aligned: MCD on 13 cepstra of the "
        "model's log-mel (a speechkit figure, not SPTK's), F0 RMSE, voicing disagreement.",
        "",
        "| rows | utts | MCD (dB) | F0 RMSE (cents) | V/UV disagreement |",
        "|---|---:|---:|---:|---:|",
    ]
    counts = {"all": scores["utterances"], "same_speaker": scores.get("same_speaker_utterances")}
    for name, n in counts.items():
        if n and (name == "all" or n < counts["all"]):  # (one row where every voice is the same)
            lines.append(
                f"| {name.replace('_', ' ')} | {n} | {scores[f'mcd_db_{name}']} | "
                f"{scores[f'f0_rmse_cents_{name}']} | {scores[f'vuv_error_{name}']} |"
            )
    lines.append("")
    if speed:
        rtf = speed.get("rtf_vocoder", speed.get("rtf_griffin_lim"))
        lines.append(
            f"- vocoder: {speed.get('vocoder', 'griffin-lim')}; real-time factor on "
            f"{speed.get('threads', 1)} CPU thread(s): acoustic model {speed['rtf_acoustic']}, "
            f"vocoder {rtf}; {len(speed.get('skipped', []))} texts skipped"
        )
    return "\n".join([*lines, *provenance_lines(command), ""])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit tts-score",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--synth", required=True, help="directory written by speechkit.bin.tts_synthesize"
    )
    p.add_argument("--whisper", default="whisper-tiny.en", help="zoo name or packed directory")
    p.add_argument("--engines", action="store_true", help="score espeak-ng and Piper beside")
    p.add_argument("--results-md", type=Path, help="also write the figures into this file")
    p.add_argument("--title", help="its section title (default: the synthesis directory)")
    p.add_argument("--command", help="the command to cite (default: this one)")
    return p


def read_synthesis(p: argparse.ArgumentParser, synth: Path) -> list[dict]:
    """The rows of ``SYNTH/synth.jsonl``, or a usage error naming what is missing."""
    if not synth.is_dir():
        p.error(f"--synth {synth}: no such directory (run speechkit.bin.tts_synthesize first)")
    path = synth / "synth.jsonl"
    if not path.is_file():
        p.error(f"--synth {synth}: no synth.jsonl (not written by speechkit.bin.tts_synthesize?)")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    if not rows:
        p.error(f"{path}: no synthesised utterance in it")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if (args.title or args.command) and not args.results_md:
        p.error("--title and --command name a section of --results-md: give --results-md too")
    torch.set_num_threads(1)
    synth = Path(args.synth)
    rows = read_synthesis(p, synth)
    missing = [r["id"] for r in rows if not (synth / "wav" / f"{r['id']}.wav").is_file()]
    if missing:
        p.error(f"{synth}/wav: {len(missing)} synthesised wav(s) missing, e.g. {missing[0]}.wav")
    mel = mel_format(synth)
    for row in tqdm(rows, desc="spectral"):
        ref = load_audio(row["reference"], mel.sample_rate)
        syn = load_audio(synth / "wav" / f"{row['id']}.wav", mel.sample_rate)
        row["mcd"], row["f0_rmse_cents"], row["vuv_error"] = spectral_errors(ref, syn, mel)
    scores: dict = {"utterances": len(rows)}
    english = [r for r in rows if r["language"] == "eng"]
    if english and args.whisper:
        asr = Transcriber.load(args.whisper)
        refs = [r["text"] for r in english]
        hyp_syn = [
            x.text for x in asr([load_audio(synth / "wav" / f"{r['id']}.wav") for r in english])
        ]
        ref_waves = [load_audio(r["reference"]) for r in english]
        hyp_ref = [x.text for x in asr(ref_waves)]
        gl = [
            griffin_lim(mel_spectrogram(torch.from_numpy(w), mel), mel)[0].numpy()
            for w in ref_waves
        ]
        hyp_gl = [x.text for x in asr(gl)]
        for r, hs, hr in zip(english, hyp_syn, hyp_ref):
            r["asr_synthesis"], r["asr_reference"] = hs, hr
        w_syn, w_ref = wer(refs, hyp_syn), wer(refs, hyp_ref)
        scores.update({
            "english_utterances": len(english),
            "wer_synthesis": round(w_syn.rate, 2),
            "wer_reference": round(w_ref.rate, 2),
            "wer_ratio": round(w_syn.rate / w_ref.rate, 2) if w_ref.rate else None,
            "wer_reference_griffin_lim": round(wer(refs, hyp_gl).rate, 2),
        })  # fmt: skip
        if args.engines:
            scores["engines"] = engine_scores(english, asr)
    same = [r for r in rows if r["ref_speaker"] == r["syn_speaker"]]
    scores["same_speaker_utterances"] = len(same)
    for name, part in (("all", rows), ("same_speaker", same)):
        if part:
            scores[f"mcd_db_{name}"] = round(float(np.mean([r["mcd"] for r in part])), 2)
            f0 = [r["f0_rmse_cents"] for r in part if not math.isnan(r["f0_rmse_cents"])]
            scores[f"f0_rmse_cents_{name}"] = round(float(np.mean(f0)), 1) if f0 else None
            scores[f"vuv_error_{name}"] = round(float(np.mean([r["vuv_error"] for r in part])), 3)
    with open(synth / "scored.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (synth / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    print(json.dumps(scores))
    if args.results_md:
        title = args.title or str(synth)
        argv_used = sys.argv[1:] if argv is None else argv
        command = args.command or shlex.join(
            ["python", "-m", "speechkit.bin.tts_score", *argv_used]
        )
        speed_path = synth / "speed.json"
        speed = json.loads(speed_path.read_text()) if speed_path.is_file() else {}
        section = markdown(title, scores, speed, args.whisper, command)
        update_markdown(args.results_md, title, section)
        print(f"wrote section {title!r} to {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
