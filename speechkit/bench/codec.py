"""Speech codecs compared on the same test audio: quality, intelligibility, speed, size.

    speechkit bench codec --codec exp/codec/packed --cuts data/cuts_test_seen.jsonl.gz \\
        [--kbps 1.5 3 6] [--opus 6 8] [--codec2 1600 3200] [--s2t exp/s2t/model_avg.pt] \\
        [--whisper whisper-tiny.en] [--limit 40] [--png exp/spec.png] [--results-md RESULTS.md] \\
        [--oracle]

(or ``python -m speechkit.bench.codec ...``). English cuts of the manifests (``--limit`` in all,
the first of each manifest in equal shares) are coded by each system, and each resynthesised
utterance is compared with the original:

* PESQ (wideband, ITU-T P.862.2; ``pesq``), STOI (``pystoi``), SI-SDR (dB), mel distance (mean L1
  of log mel spectrograms, ``speechkit.nn.spectral_loss.MelLoss``), speaker similarity (cosine
  of Resemblyzer d-vectors, when ``resemblyzer`` is installed);
* intelligibility: greedy WER of Whisper (``--whisper``, zoo name or packed directory) and of an
  S2T model (``--s2t``, e.g. the recipe's) on the resynthesised speech, next to the original's;
* speechkit's codec: encode and decode speed as RTFx (audio seconds per CPU second, with
  ``--threads`` torch threads) and model size.

Opus (``opusenc``/``opusdec``, ``--opus`` kbps) and Codec2 (``c2enc``/``c2dec`` on 8 kHz audio,
``--codec2`` bits/s) run in the same benchmark when their tools are installed (Debian:
``opus-tools``, ``codec2``) and are skipped with a note otherwise. Each system's output is
aligned to the original (the lag of the cross-correlation peak within 100 ms) before the
sample-wise metrics, so Codec2's delay does not count as distortion. ``--png`` draws the
spectrograms of one utterance: original, the codec at each bitrate, Opus.

``--oracle`` (spectral codecs) asks where the quality is lost. At the highest ``--kbps`` it adds
two rows that are not codecs, since each reads the original: the decoder's predicted amplitude
spectrum with the original's phase, and the original's amplitude with the predicted phase
(``oracle_systems``). The row closer to the original's quality marks the half of the
prediction that costs less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import Tensor

from speechkit.bench import add_cite_argument, cited_command, read_paths_line, testset
from speechkit.metrics import wer
from speechkit.nn.spectral_loss import MelLoss, magnitude, si_sdr
from speechkit.report import provenance_lines, update_markdown

SR = 16000
MAX_LAG = SR // 10  # 100 ms

Coder = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class System:
    """A way to code speech: ``run`` maps 16 kHz waves to 16 kHz waves."""

    name: str
    kbps: float
    run: Coder
    timing: dict[str, float] = field(default_factory=dict)  # encode_s / decode_s, if measured


@dataclass
class Scores:
    """Means over the test utterances of one system (nan where a metric is unavailable)."""

    pesq: float = float("nan")
    stoi: float = float("nan")
    sisdr: float = float("nan")
    mel: float = float("nan")
    speaker: float = float("nan")
    wer: dict[str, float] = field(default_factory=dict)  # recogniser label -> WER %


# ---- systems ---------------------------------------------------------------------------


def codec_system(codec, kbps: float) -> System:
    """speechkit's codec at ``kbps``, timing encode and decode separately."""
    n_q = codec.n_quantizers(kbps=kbps)
    system = System(f"speechkit codec {codec.bitrates()[n_q]:g} kbps", codec.bitrates()[n_q], None)

    def run(waves: list[np.ndarray]) -> list[np.ndarray]:
        out, enc_s, dec_s = [], 0.0, 0.0
        for w in waves:
            t0 = time.perf_counter()
            codes = codec.encode(w, n_q=n_q)
            t1 = time.perf_counter()
            out.append(codec.decode(codes)[0, : len(w)].numpy())
            enc_s, dec_s = enc_s + t1 - t0, dec_s + time.perf_counter() - t1
        system.timing = {"encode_s": enc_s, "decode_s": dec_s}
        return out

    system.run = run
    return system


def oracle_systems(codec, kbps: float) -> list[System]:
    """The ``--oracle`` rows of a spectral codec at ``kbps`` (module docstring): its decoder's
    log amplitude (B, F, T) with the phase of the original's STFT, taken as the decoder
    synthesises (window, hop, frame ``t`` centred on sample ``t * hop``), and the other way
    round; each spectrum goes through the decoder's own inverse STFT."""
    model = codec.model
    if model.cfg.backbone != "spectral":
        raise ValueError(f"--oracle needs a spectral codec, got backbone {model.cfg.backbone!r}")
    n_q = codec.n_quantizers(kbps=kbps)
    decoder = model.decoder

    @torch.no_grad()
    def spectra(w: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        latent = model.quantizer.decode(codec.encode(w, n_q=n_q).to(codec.device))
        log_amp, real, imag = decoder.heads(latent)  # (1, F, T) each
        ref = decoder.stft(model.pad(torch.from_numpy(w)[None].to(codec.device)))
        return log_amp, torch.atan2(imag, real), ref[..., : log_amp.size(-1)]

    def system(name: str, amp_from_codec: bool) -> System:
        def run(waves: list[np.ndarray]) -> list[np.ndarray]:
            out = []
            for w in waves:
                log_amp, phase, ref = spectra(w)
                if amp_from_codec:
                    spec = torch.polar(log_amp.exp(), ref.angle())
                else:
                    spec = torch.polar(ref.abs(), phase)
                with torch.no_grad():
                    out.append(decoder.istft(spec)[0, : len(w)].cpu().numpy())
            return out

        return System(name, codec.bitrates()[n_q], run)

    kb = f"{codec.bitrates()[n_q]:g} kbps"
    return [
        system(f"oracle: codec {kb} amplitude + original phase", True),
        system(f"oracle: original amplitude + codec {kb} phase", False),
    ]


def _tool_run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")


def opus_system(kbps: float) -> System:
    """Opus (libopus via opus-tools) at ``kbps``, speech-tuned, 16 kHz in and out."""

    def run(waves: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            src, enc, dst = (Path(tmp) / n for n in ("in.wav", "x.opus", "out.wav"))
            for w in waves:
                sf.write(src, w, SR, subtype="PCM_16")
                _tool_run(
                    ["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--speech", str(src), str(enc)]
                )
                _tool_run(["opusdec", "--quiet", "--rate", str(SR), str(enc), str(dst)])
                out.append(sf.read(dst, dtype="float32")[0])
        return out

    return System(f"Opus {kbps:g} kbps", kbps, run)


def codec2_system(bps: int) -> System:
    """Codec2 at ``bps`` (8 kHz narrowband: audio is resampled down and back up)."""

    def run(waves: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        with tempfile.TemporaryDirectory() as tmp:
            src, enc, dst = (Path(tmp) / n for n in ("in.raw", "x.c2", "out.raw"))
            for w in waves:
                pcm = np.clip(soxr.resample(w, SR, 8000) * 32767, -32768, 32767).astype("<i2")
                src.write_bytes(pcm.tobytes())
                _tool_run(["c2enc", str(bps), str(src), str(enc)])
                _tool_run(["c2dec", str(bps), str(enc), str(dst)])
                dec = np.frombuffer(dst.read_bytes(), dtype="<i2").astype(np.float32) / 32768
                out.append(soxr.resample(dec, 8000, SR).astype(np.float32))
        return out

    return System(f"Codec2 {bps / 1000:g} kbps (8 kHz)", bps / 1000, run)


# ---- metrics ---------------------------------------------------------------------------


def align(ref: np.ndarray, deg: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """``deg`` shifted by the lag (|lag| <= ``max_lag`` samples) that maximises its
    cross-correlation with ``ref``, cut or zero-padded to ``len(ref)``."""
    n = len(ref) + len(deg)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(deg, size)), size)
    lags = np.concatenate([xc[: max_lag + 1], xc[-max_lag:]])  # lags 0..max, -max..-1
    lag = int(np.argmax(lags))
    lag = lag if lag <= max_lag else lag - len(lags)
    shifted = np.roll(np.pad(deg, (0, max(0, len(ref) - len(deg)) + abs(lag))), lag)
    if lag > 0:
        shifted[:lag] = 0
    return shifted[: len(ref)].astype(np.float32)


class Quality:
    """Per-utterance quality metrics of a degraded wave against its reference (16 kHz)."""

    def __init__(self) -> None:
        self.mel = MelLoss(SR)
        self.speaker = _speaker_encoder()

    def __call__(self, ref: np.ndarray, deg: np.ndarray) -> dict[str, float]:
        from pesq import PesqError, pesq
        from pystoi import stoi

        r, d = torch.from_numpy(ref)[None], torch.from_numpy(deg)[None]
        try:
            p = float(pesq(SR, ref, deg, "wb"))
        except PesqError:  # e.g. no utterance detected in silence
            p = float("nan")
        out = {
            "pesq": p,
            "stoi": float(stoi(ref, deg, SR, extended=False)),
            "sisdr": float(si_sdr(d, r)[0]),
            "mel": float(self.mel(d, r)),
        }
        if self.speaker is not None:
            out["speaker"] = self.speaker(ref, deg)
        return out


def _speaker_encoder() -> Callable[[np.ndarray, np.ndarray], float] | None:
    """Cosine similarity of Resemblyzer d-vectors (None when resemblyzer is not installed)."""
    _pkg_resources_shim()
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError:
        return None
    encoder = VoiceEncoder(device="cpu", verbose=False)

    def similarity(ref: np.ndarray, deg: np.ndarray) -> float:
        a = encoder.embed_utterance(preprocess_wav(ref, SR))
        b = encoder.embed_utterance(preprocess_wav(deg, SR))
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))

    return similarity


def _pkg_resources_shim() -> None:
    """webrtcvad 2.0.10 (Resemblyzer's voice activity detector) reads its own version through
    ``pkg_resources``, which setuptools >= 81 no longer ships; a stand-in answering exactly that
    call through ``importlib.metadata`` lets it import."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import types
        from importlib import metadata

        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=metadata.version(name))
        sys.modules["pkg_resources"] = shim


def whisper_recognizer(model: str) -> Callable[[list[np.ndarray]], list[str]]:
    """Greedy transcripts of a Whisper model (zoo name or packed directory)."""
    from speechkit.inference import TranscribeOptions, Transcriber

    tr = Transcriber.load(model, TranscribeOptions(beam=1, language="eng"))
    return lambda waves: [r.text for r in tr(waves)]


def s2t_recognizer(model: str) -> Callable[[list[np.ndarray]], list[str]]:
    """Greedy English transcripts of a speechkit S2T model (packed directory or checkpoint),
    log-mel or codec-code input (``features.kind: codec``: its codec codes the audio first)."""
    from speechkit.data.features import LogMel
    from speechkit.decode import DecodeOptions, SpecialIds, decode
    from speechkit.pretrained import load_pretrained
    from speechkit.tasks.s2t import codec_front_end

    p = load_pretrained(model)
    front_end = codec_front_end(p.features, p.config) or LogMel(p.features)
    tok = p.tokenizer
    opts, ids = DecodeOptions(beam_size=1, ctc_weight=0.0), SpecialIds.from_tokenizer(tok)
    prefix = torch.tensor([tok.sot_sequence("eng", "asr")])

    def run(waves: list[np.ndarray]) -> list[str]:
        hyps = []
        for w in waves:
            feats, lens = front_end(torch.from_numpy(w)[None], torch.tensor([len(w)]))
            best = decode(p.model, feats, lens, prefix, opts, ids)[0][0]
            hyps.append(tok.decode(best.tokens))
        return hyps

    return run


# ---- the benchmark ---------------------------------------------------------------------


def english_set(manifests: list[Path], limit: int) -> testset.EvalSet:
    """The first ``ceil(limit / len(manifests))`` English cuts of each manifest, at most
    ``limit`` in all (so every test set is represented)."""
    per = -(-limit // len(manifests))
    sets = [testset.from_cuts(m, "eng", limit=per) for m in manifests]
    ids = [i for s in sets for i in s.ids][:limit]
    waves = [w for s in sets for w in s.waves][:limit]
    refs = [r for s in sets for r in s.refs][:limit]
    return testset.EvalSet("asr eng", "transcribe", "eng", ids, waves, refs)


def score(
    system_waves: list[np.ndarray],
    ref: testset.EvalSet,
    quality: Quality,
    recognizers: dict[str, Callable],
) -> Scores:
    """Mean metrics of one system's output against the originals."""
    rows = [quality(r, align(r, d)) for r, d in zip(ref.waves, system_waves)]
    s = Scores(**{k: float(np.nanmean([row[k] for row in rows])) for k in rows[0]})
    s.wer = {name: wer(ref.refs, rec(system_waves)).rate for name, rec in recognizers.items()}
    return s


def spectrogram_png(path: Path, panels: list[tuple[str, np.ndarray]]) -> None:
    """One row per (title, 16 kHz wave): log-magnitude spectrograms, 0-8 kHz."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels)), sharex=True)
    for ax, (title, wave) in zip(np.atleast_1d(axes), panels):
        mag = magnitude(torch.from_numpy(wave)[None], 512, 128)[0].numpy()
        db = 20 * np.log10(np.maximum(mag, 1e-5))
        ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            vmin=db.max() - 80,
            vmax=db.max(),
            extent=(0, len(wave) / SR, 0, SR / 2000),
            cmap="magma",
        )
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz")
    np.atleast_1d(axes)[-1].set_xlabel("seconds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _rel(path: Path, md: Path) -> str:
    """``path`` as a link from the markdown file ``md``."""
    return os.path.relpath(path.resolve(), md.resolve().parent)


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if np.isnan(x) else f"{x:.{digits}f}"


def table(results: list[tuple[System, Scores]], asr: list[str], have_spk: bool) -> list[str]:
    head = [
        "system",
        "kbps",
        "PESQ-wb",
        "STOI",
        "SI-SDR dB",
        "mel dist",
        "spk sim",
        *[f"WER {name} %" for name in asr],
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system, s in results:
        cells = [
            system.name,
            _fmt(system.kbps, 2),
            _fmt(s.pesq),
            _fmt(s.stoi),
            _fmt(s.sisdr, 1),
            _fmt(s.mel),
            _fmt(s.speaker) if have_spk else "n/a",
            *[_fmt(s.wer.get(name, float("nan")), 1) for name in asr],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="speechkit bench codec", description=__doc__.split("\n")[0])
    p.add_argument("--codec", required=True, help="packed codec directory or checkpoint")
    p.add_argument("--cuts", required=True, nargs="+", type=Path, help="lhotse cut manifest(s)")
    p.add_argument("--limit", type=int, default=40, help="English utterances (split over --cuts)")
    p.add_argument("--kbps", type=float, nargs="*", default=[1.5, 3.0, 6.0])
    p.add_argument("--opus", type=float, nargs="*", default=[6.0, 8.0], help="Opus kbps")
    p.add_argument("--codec2", type=int, nargs="*", default=[1600, 3200], help="Codec2 bit/s")
    p.add_argument("--whisper", default="whisper-tiny.en", help="zoo name or packed dir ('' = no)")
    p.add_argument(
        "--s2t",
        nargs="*",
        default=[],
        metavar="[LABEL=]MODEL",
        help="speechkit S2T models for more WER columns (log-mel or codec codes)",
    )
    p.add_argument(
        "--oracle",
        action="store_true",
        help="spectral codecs: add the predicted amplitude with the original phase and the other "
        "way round, at the highest --kbps (where the quality is lost)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (RTFx is per thread)")
    p.add_argument("--png", type=Path, help="spectrograms of the first utterance")
    p.add_argument("--results-md", type=Path, help="write the section into this markdown file")
    p.add_argument("--title", default="Codec benchmark")
    add_cite_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.oracle and not args.kbps:
        parser.error("--oracle needs a codec bitrate (--kbps)")
    torch.set_num_threads(args.threads)
    from speechkit import codec as codec_api
    from speechkit.models import count_parameters

    codec = codec_api.load(args.codec)
    ref = english_set(args.cuts, args.limit)

    systems = [codec_system(codec, k) for k in args.kbps]
    oracles = oracle_systems(codec, max(args.kbps)) if args.oracle else []
    notes = []
    if args.opus and shutil.which("opusenc") and shutil.which("opusdec"):
        systems += [opus_system(k) for k in args.opus]
    elif args.opus:
        notes.append("Opus skipped: opusenc/opusdec not installed (apt-get install opus-tools)")
    if args.codec2 and shutil.which("c2enc") and shutil.which("c2dec"):
        systems += [codec2_system(b) for b in args.codec2]
    elif args.codec2:
        notes.append("Codec2 skipped: c2enc/c2dec not installed (apt-get install codec2)")

    recognizers = {}
    if args.whisper:
        recognizers["whisper"] = whisper_recognizer(args.whisper)
    for item in args.s2t:
        label, _, model = item.rpartition("=")
        recognizers[label or "s2t"] = s2t_recognizer(model)
    asr = list(recognizers)
    quality = Quality()
    original = Scores()
    original.wer = {name: wer(ref.refs, rec(ref.waves)).rate for name, rec in recognizers.items()}
    results = [(System("original", float("nan"), None), original)]
    outputs = {}
    for system in systems + oracles:
        outputs[system.name] = system.run(ref.waves)
        results.append((system, score(outputs[system.name], ref, quality, recognizers)))
        print(table(results[-1:], asr, quality.speaker is not None)[-1], flush=True)

    seconds = ref.seconds
    speed = [
        f"{s.name}: encode RTFx {seconds / s.timing['encode_s']:.1f}, decode RTFx "
        f"{seconds / s.timing['decode_s']:.1f}"
        for s in systems
        if s.timing
    ]
    params = count_parameters(codec.model)
    size = (
        f"speechkit codec: {params / 1e6:.2f} M parameters ({params * 4 / 2**20:.1f} MiB "
        f"float32), {codec.num_quantizers} codebooks of {codec.cfg.rvq.codebook_size}, "
        f"{codec.cfg.frame_rate:g} frames/s"
    )
    lines = table(results, asr, quality.speaker is not None)
    if args.png:
        panels = [("original", ref.waves[0])]
        panels += [(s.name, outputs[s.name][0]) for s in systems if "Codec2" not in s.name]
        spectrogram_png(args.png, panels)
    print("\n".join(lines + speed + [size] + notes))
    if args.results_md:
        section = [
            f"## {args.title}",
            "",
            f"{len(ref.waves)} English utterances ({seconds:.0f} s) of "
            f"{', '.join(str(c) for c in args.cuts)}; means per utterance; WER greedy. "
            f"Speed with {args.threads} CPU thread(s).",
            "",
            *lines,
            "",
            *[f"- {x}" for x in speed + [size] + notes],
            *(
                [f"- spectrograms: ![spectrograms]({_rel(args.png, args.results_md)})"]
                if args.png
                else []
            ),
            *provenance_lines(cited_command("codec", argv, args.cite_path)),
            *read_paths_line(args.cite_path),
            "",
        ]
        update_markdown(args.results_md, args.title, "\n".join(section) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
