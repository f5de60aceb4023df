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
  frames voiced in both, the voicing disagreement rate, and the fraction of frames voiced in the
  synthesis and in the recordings (a synthesis without harmonics is mostly unvoiced).

* more judges on every language (``--judges``, any model ``speechkit decode`` reads: a zoo
  Whisper such as ``whisper-base``, or an S2T model trained here): each decodes the synthesis
  and the reference recordings as ASR in the row's language (``speechkit.bin.decode``, beam 5,
  joint CTC weight ``--judge-ctc-weight`` for models with a CTC head, as the s2t recipes decode;
  into ``SYNTH/judges/<label>/{synthesis,reference}/``); WER per language and their ratio;
* speaker similarity (``--speaker-similarity``, on by default): cosine of GE2E d-vectors
  (Resemblyzer's bundled weights, ``speechkit.models.query_encoders.SpeakerEncoder``) between
  the synthesis and the recording of the same voice and sentence (same-speaker rows), beside two
  yardsticks from the same recordings: the synthesis against recordings of *other* voices of its
  language (what a wrong voice scores), and recordings of one voice against each other (what
  the same voice scores); rows whose synthesis or recording is under 1 s or silent are left out
  and counted;
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
from speechkit.data.phrasebook.grammar import LANGUAGES
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
    ref: np.ndarray, syn: np.ndarray, mel: TTSMelConfig, predicted: np.ndarray | None = None
) -> dict[str, float]:
    """``syn`` against ``ref`` (both at ``mel.sample_rate``), DTW-aligned on their cepstra, in
    one pass (each wave's cepstra and YIN pitch computed once): ``mcd`` (dB), ``f0_rmse_cents``
    (frames voiced in both), ``vuv_error`` (voicing disagreement), ``voiced_reference`` and
    ``voiced_synthesis`` (fractions of voiced frames); with ``predicted`` (the acoustic model's
    contour, octaves re ``PITCH_REFERENCE_HZ`` per synthesis frame) also
    ``f0_rmse_cents_predicted`` on the reference's voiced frames: the pitch the model asked for,
    whether or not the vocoder voiced it. An F0 figure without frames to compare is NaN."""
    c_ref, c_syn = cepstra(ref, mel), cepstra(syn, mel)
    _, path = librosa.sequence.dtw(X=c_ref, Y=c_syn, metric="euclidean")
    i, j = path[::-1, 0], path[::-1, 1]
    diff = c_ref[:, i] - c_syn[:, j]
    mcd = float(np.mean(10 / math.log(10) * np.sqrt(2 * (diff**2).sum(0))))
    cfg = TTSDataConfig()
    p_ref, v_ref = frame_pitch(ref, mel, cfg)
    p_syn, v_syn = frame_pitch(syn, mel, cfg)

    def rmse_cents(ref_frames, other, on) -> float:
        cents = 1200 * (p_ref[ref_frames] - other)[on]
        return float(np.sqrt(np.mean(cents**2))) if on.any() else float("nan")

    ir, js = np.minimum(i, len(p_ref) - 1), np.minimum(j, len(p_syn) - 1)
    both = v_ref[ir] & v_syn[js]
    out = {
        "mcd": mcd,
        "f0_rmse_cents": rmse_cents(ir, p_syn[js], both),
        "vuv_error": float(np.mean(v_ref[ir] != v_syn[js])),
        "voiced_reference": float(v_ref.mean()),
        "voiced_synthesis": float(v_syn.mean()),
    }
    if predicted is not None:
        jp = np.minimum(j, len(predicted) - 1)
        out["f0_rmse_cents_predicted"] = rmse_cents(ir, predicted[jp], v_ref[ir])
    return out


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


def judge_label(model: str) -> str:
    """A judge's name in scores and tables: a zoo name as it is, a path by its experiment
    (``../s2t1/exp/s2t_tiny/model_avg.pt`` -> ``s2t_tiny``)."""
    path = Path(model)
    return path.parent.name if path.suffix == ".pt" else path.name


def write_judge_cuts(rows: list[dict], synth: Path) -> dict[str, Path]:
    """``SYNTH/judges/cuts_{synthesis,reference}.jsonl.gz``: one cut per row (id = row id) with
    the row's text and language, on the synthesised wave and on the reference recording."""
    from lhotse import CutSet, Recording, SupervisionSegment

    out = synth / "judges"
    out.mkdir(exist_ok=True)
    paths = {}
    for kind in ("synthesis", "reference"):
        cuts = []
        for r in rows:
            audio = synth / "wav" / f"{r['id']}.wav" if kind == "synthesis" else r["reference"]
            cut = Recording.from_file(audio, recording_id=r["id"]).to_cut()
            cut.supervisions = [SupervisionSegment(
                r["id"], r["id"], 0.0, cut.duration, text=r["text"], language=r["language"],
                speaker=r["syn_speaker" if kind == "synthesis" else "ref_speaker"],
            )]  # fmt: skip
            cuts.append(cut)
        paths[kind] = out / f"cuts_{kind}.jsonl.gz"
        CutSet.from_cuts(cuts).to_file(paths[kind])
    return paths


def decode_hyps(model: str, cuts: Path, out: Path, ctc_weight: float = 0.0) -> dict[str, str]:
    """{cut id: ASR hypothesis} of ``model`` on ``cuts`` (``speechkit.bin.decode``, one CPU
    thread, beam 5, the cut's language given; ``ctc_weight`` for joint CTC scoring), written
    under ``out``."""
    from speechkit.bin import decode

    args = ["--model", model, "--cuts", str(cuts), "--out", str(out), "--tasks", "asr",
            "--threads", "1", "--device", "cpu", "--ctc-weight", str(ctc_weight)]  # fmt: skip
    decode.run(decode.parse_args(args))
    hyps = {}
    for path in out.glob("asr_*/hyps.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            hyps[row["id"]] = row["hyp"]
    return hyps


def ctc_weight_of(model: str, weight: float) -> float:
    """``weight`` for a judge with a CTC head (S2T models), 0 for a Whisper model."""
    from speechkit import zoo
    from speechkit.pretrained import WHISPER_TYPES

    return 0.0 if zoo.load(model).model_type in WHISPER_TYPES else weight


def judge_scores(
    rows: list[dict], cuts: dict[str, Path], model: str, out: Path, ctc_weight: float = 0.0
) -> dict:
    """Per language and over all: WER (%) of ``model`` on the synthesis and on the reference
    recordings of the same rows, and their ratio (module docstring)."""
    hyps = {kind: decode_hyps(model, path, out / kind, ctc_weight) for kind, path in cuts.items()}
    table = {}
    for lang in [*sorted({r["language"] for r in rows}), "all"]:
        part = [r for r in rows if lang in ("all", r["language"])]
        refs = [r["text"] for r in part]
        syn = wer(refs, [hyps["synthesis"].get(r["id"], "") for r in part]).rate
        ref = wer(refs, [hyps["reference"].get(r["id"], "") for r in part]).rate
        table[lang] = {
            "utterances": len(part),
            "wer_synthesis": round(syn, 2),
            "wer_reference": round(ref, 2),
            "ratio": round(syn / ref, 2) if ref else None,
        }
    return table


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def speaker_similarity(rows: list[dict], synth: Path) -> dict:
    """GE2E cosine similarities (module docstring): ``secs_same_speaker`` (synthesis vs the
    recording of its own voice and sentence), ``secs_other_speakers`` (the same syntheses vs
    recordings of other voices of their language), ``secs_recordings_same_speaker`` (two
    recordings of one voice, different sentences); each a mean over same-speaker rows."""
    from speechkit.models.query_encoders import SpeakerEncoder

    enc = SpeakerEncoder()
    embeds: dict[tuple[str, str], np.ndarray] = {}
    skipped = 0
    for r in tqdm(rows, desc="speaker embeddings"):
        waves = {"syn": load_audio(synth / "wav" / f"{r['id']}.wav"),
                 "ref": load_audio(r["reference"])}  # fmt: skip
        try:
            for w in waves.values():
                enc.check(w)
        except ValueError:
            skipped += 1
            continue
        vectors = enc.embed_batch(list(waves.values())).numpy()
        embeds[(r["id"], "syn")], embeds[(r["id"], "ref")] = vectors[0], vectors[1]
    kept = [r for r in rows if (r["id"], "syn") in embeds]
    same = [r for r in kept if r["ref_speaker"] == r["syn_speaker"]]
    own, other, recordings = [], [], []
    for r in same:
        syn, ref = embeds[(r["id"], "syn")], embeds[(r["id"], "ref")]
        own.append(float(syn @ ref))
        others = [embeds[(x["id"], "ref")] for x in kept
                  if x["language"] == r["language"] and x["ref_speaker"] != r["syn_speaker"]]  # fmt: skip
        if others:
            other.append(float(np.mean([syn @ o for o in others])))
        twins = [embeds[(x["id"], "ref")] for x in kept
                 if x["ref_speaker"] == r["ref_speaker"] and x["id"] != r["id"]]  # fmt: skip
        if twins:
            recordings.append(float(np.mean([ref @ t for t in twins])))
    return {
        "same_speaker_utterances": len(same),
        "skipped_short_or_silent": skipped,
        "secs_same_speaker": _mean(own),
        "secs_other_speakers": _mean(other),
        "secs_recordings_same_speaker": _mean(recordings),
        "recordings_same_speaker_utterances": len(recordings),
    }


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
    if scores.get("judges"):
        seen = {x for t in scores["judges"].values() for x in t if x != "all"}
        langs = [x for x in LANGUAGES if x in seen] + sorted(seen - set(LANGUAGES))
        lines += [
            "ASR WER (%) by language, synthesis / reference recordings of the same sentences "
            "(ratio), each judge decoding in the row's language:",
            "",
            "| judge | " + " | ".join([*langs, "all"]) + " |",
            "|---|" + "---:|" * (len(langs) + 1),
        ]
        for label, table in scores["judges"].items():
            cells = []
            for lang in [*langs, "all"]:
                t = table.get(lang)
                cells.append(f"{t['wer_synthesis']} / {t['wer_reference']} ({t['ratio']})"
                             if t else "")  # fmt: skip
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "Against the recording of the same sentence, DTW-aligned: MCD on 13 cepstra of the "
        "model's log-mel (a speechkit figure, not SPTK's), F0 RMSE (YIN on both waves, frames "
        "voiced in both), the predicted contour's F0 RMSE (frames voiced in the recording), "
        "voicing disagreement.",
        "",
        "| rows | utts | MCD (dB) | F0 RMSE (cents) | predicted F0 RMSE (cents) | V/UV "
        "disagreement | voiced: synthesis | voiced: recordings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    counts = {"all": scores["utterances"], "same_speaker": scores.get("same_speaker_utterances")}
    for name, n in counts.items():
        if n and (name == "all" or n < counts["all"]):  # (one row where every voice is the same)
            lines.append(
                f"| {name.replace('_', ' ')} | {n} | {scores[f'mcd_db_{name}']} | "
                f"{scores[f'f0_rmse_cents_{name}']} | "
                f"{scores[f'f0_rmse_cents_predicted_{name}']} | {scores[f'vuv_error_{name}']} | "
                f"{scores[f'voiced_fraction_synthesis_{name}']} | "
                f"{scores[f'voiced_fraction_reference_{name}']} |"
            )
    lines.append("")
    sim = scores.get("speaker_similarity")
    if sim and sim["secs_same_speaker"] is not None:
        lines += [
            "Speaker similarity (cosine of GE2E d-vectors, Resemblyzer's weights), "
            f"{sim['same_speaker_utterances']} same-voice rows: synthesis vs the recording of "
            "its voice; the same syntheses vs recordings of other voices of the language; two "
            f"recordings of one voice ({sim['recordings_same_speaker_utterances']} rows).",
            "",
            "| synthesis, own voice | synthesis, other voices | recordings, same voice |",
            "|---:|---:|---:|",
            f"| {sim['secs_same_speaker']} | {sim['secs_other_speakers']} | "
            f"{sim['secs_recordings_same_speaker']} |",
            "",
        ]
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
    p.add_argument(
        "--judges",
        nargs="*",
        default=[],
        help="models that judge every language (zoo name, packed dir, checkpoint .pt)",
    )
    p.add_argument(
        "--judge-ctc-weight",
        type=float,
        default=0.3,
        help="joint CTC weight of judges with a CTC head (S2T; the s2t recipes decode with 0.3)",
    )
    p.add_argument(
        "--speaker-similarity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="GE2E cosine similarity on same-voice rows (default on)",
    )
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
    labels = [judge_label(j) for j in args.judges]
    if len(set(labels)) < len(labels):
        p.error(f"--judges: two judges named alike ({labels}); give distinct experiments")
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
        predicted = torch.load(synth / "mel" / f"{row['id']}.pt")["pitch"].numpy()
        row.update(spectral_errors(ref, syn, mel, predicted))
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
    if args.judges:
        cuts = write_judge_cuts(rows, synth)
        scores["judges"] = {
            label: judge_scores(
                rows,
                cuts,
                judge,
                synth / "judges" / label,
                ctc_weight_of(judge, args.judge_ctc_weight),
            )
            for label, judge in zip(labels, args.judges)
        }
    if args.speaker_similarity:
        scores["speaker_similarity"] = speaker_similarity(rows, synth)
    same = [r for r in rows if r["ref_speaker"] == r["syn_speaker"]]
    scores["same_speaker_utterances"] = len(same)
    for name, part in (("all", rows), ("same_speaker", same)):
        if part:
            scores[f"mcd_db_{name}"] = round(float(np.mean([r["mcd"] for r in part])), 2)
            for key in ("f0_rmse_cents", "f0_rmse_cents_predicted"):
                f0 = [r[key] for r in part if not math.isnan(r[key])]
                scores[f"{key}_{name}"] = round(float(np.mean(f0)), 1) if f0 else None
            scores[f"vuv_error_{name}"] = round(float(np.mean([r["vuv_error"] for r in part])), 3)
            for kind in ("reference", "synthesis"):
                voiced = np.mean([r[f"voiced_{kind}"] for r in part])
                scores[f"voiced_fraction_{kind}_{name}"] = round(float(voiced), 3)
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
