"""Query-conditioned separation: SI-SDRi by query type and SNR band, speed, pictures, and WER.

    python -m speechkit.bench.separation --model supervised=exp/sep_supervised \\
        --model weak=exp/sep_weak --cuts data/mixtures/cuts_test.jsonl.gz \\
        --figures figures --wer-model whisper-tiny.en --results-md RESULTS.md

For every test mixture (``speechkit prepare_mixtures`` or ``prepare_librimix``: sources kept)
and every query that applies to it, the model's estimate is scored against the true source with
torchmetrics' SI-SDR; the improvement is over the unprocessed mixture. Query types:

* ``class: speech``: a background mixture, query ``speech``, target the speech;
* ``class: background``: the same mixtures, query the background's class, target it;
* ``text (held-out)``: a background mixture, a description of the speech in words never used in
  training (``speechkit.data.queries.HELDOUT``), target the speech;
* ``enrolled speaker``: a two-speaker mixture, another clip of the target speaker as query.

A model without text or speaker queries (the Conv-TasNet baseline, ``query_kinds``) is scored on
the class queries only.

``--oracle irm|psm|ibm``: the same rows for an oracle mask computed from the true sources on the
STFT of ``--oracle-stft`` (default 512/128, the separator's): the ideal ratio mask, the
phase-sensitive mask (clipped to [0, 1]) and the ideal binary mask. They are the ceiling of a
real-valued mask at that resolution, so a target above them asks for phase (a complex mask
learned from more than the magnitude, or a time-domain model).

Speed: separation real-time factor (wall / audio seconds, one thread) over those mixtures.
Pictures: mixture / estimate / reference spectrograms of one example per query type (PNG).
``--wer-model``: Whisper (zoo name or packed dir) on English mixtures at 0 dB and below (of
``--wer-cuts``, default ``--cuts``), greedy or with ``--wer-beam N``: without and with the first
model as front end (class ``speech``; ``--wer-remix r ...`` adds a share r of the mixture back,
a row each, see ``speechkit.separate.Extractor``), and on their clean speech without and with
it. Each ``--oracle`` mask adds a row: the WER a perfect mask of that kind would give.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from torch import nn

from speechkit.bench import add_cite_argument, cited_command
from speechkit.data.mixtures import load_mixture, snr_band
from speechkit.data.queries import describe
from speechkit.models.query_encoders import SPEAKER_DIM, TEXT_DIM, SentenceEncoder, SpeakerEncoder
from speechkit.models.separation import QUERY_KINDS, Separator
from speechkit.report import provenance_lines, update_markdown
from speechkit.separate import load_trained, remix

__all__ = ["evaluate", "main", "oracle_estimates", "oracle_mask", "oracle_scores"]

QUERY_TYPES = ("class: speech", "class: background", "text (held-out)", "enrolled speaker")
BANDS = ("[-5,0)", "[0,5)", "[5,10)", "[10,15]")


class _Queries:
    """Query vectors for the test mixtures, encoders loaded once."""

    def __init__(self) -> None:
        self.text, self.speaker = SentenceEncoder(), SpeakerEncoder()

    def __call__(self, model: nn.Module, cut, qtype: str, sources):
        """(query tensors, target wave) of ``qtype`` for ``cut``, or None if it does not apply.
        ``sources``: the cut's (speech, interference) waves."""
        event = cut.custom["event"]
        text, spk = torch.zeros(1, TEXT_DIM), torch.zeros(1, SPEAKER_DIM)
        kind, name, target = "class", "speech", sources[0]
        if (event == "speaker") != (qtype == "enrolled speaker"):
            return None
        wanted = {"text (held-out)": "text", "enrolled speaker": "speaker"}.get(qtype, "class")
        if wanted not in getattr(model, "query_kinds", QUERY_KINDS):
            return None  # a baseline without text or speaker queries (Conv-TasNet)
        if qtype == "class: background":
            name, target = event, sources[1]
        elif qtype == "text (held-out)":
            kind = "text"
            text = self.text([describe("speech", event, random.Random(cut.id), heldout=True)])
        elif qtype == "enrolled speaker":
            if "enroll" not in cut.custom:
                return None
            kind = "speaker"
            spk = self.speaker(cut.custom["enroll"].load_audio().mean(0))[None]
        q = (torch.tensor([QUERY_KINDS.index(kind)]), torch.tensor([model.class_index(name)]),
             text, spk)  # fmt: skip
        return q, target


def _sisdr(est: np.ndarray, ref: np.ndarray) -> float:
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    return float(
        scale_invariant_signal_distortion_ratio(torch.from_numpy(est), torch.from_numpy(ref))
    )


def evaluate(model: nn.Module, cuts, queries: _Queries, figures: Path | None, tag: str) -> dict:
    """SI-SDRi lists by (query type, band), RTF, and one PNG per query type."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    seconds = wall = 0.0
    drawn = set()
    for cut in cuts:
        mix, *sources = load_mixture(cut)
        for qtype in QUERY_TYPES:
            got = queries(model, cut, qtype, sources)
            if got is None:
                continue
            q, target = got
            start = time.perf_counter()
            with torch.no_grad():
                est = model(torch.from_numpy(mix)[None], *q)[0].numpy()
            wall += time.perf_counter() - start
            seconds += cut.duration
            gain = _sisdr(est, target) - _sisdr(mix, target)
            scores[(qtype, snr_band(cut.custom["snr_db"]))].append(gain)
            if figures is not None and qtype not in drawn and -2 < cut.custom["snr_db"] < 3:
                drawn.add(qtype)
                _spectrograms(mix, est, target, figures / f"{tag}_{qtype.split()[0].strip(':')}"
                              f"{'_bg' if 'background' in qtype else ''}.png",
                              f"{tag}, {qtype}, {cut.custom['event']} at {cut.custom['snr_db']:.1f} dB")  # fmt: skip
    return {"scores": scores, "rtf": wall / max(seconds, 1e-9)}


ORACLES = ("irm", "psm", "ibm")


def oracle_mask(target: torch.Tensor, other: torch.Tensor, kind: str) -> torch.Tensor:
    """Real mask (F, T) in [0, 1] for the complex STFTs ``target`` and ``other`` (F, T) of a
    mixture's two parts: ``irm`` |T| / sqrt(|T|^2 + |O|^2), ``psm`` |T| cos(angle(T) - angle(M))
    / |M| with M = T + O, clipped to [0, 1], ``ibm`` 1 where |T| > |O|."""
    eps = 1e-12
    if kind == "irm":
        power = target.abs().square()
        return (power / (power + other.abs().square() + eps)).sqrt()
    if kind == "psm":
        mix = target + other
        cos = torch.cos(target.angle() - mix.angle())
        return (target.abs() * cos / (mix.abs() + eps)).clamp(0.0, 1.0)
    if kind == "ibm":
        return (target.abs() > other.abs()).to(target.real.dtype)
    raise ValueError(f"unknown oracle mask {kind!r}; choose from {list(ORACLES)}")


def oracle_estimates(mix: np.ndarray, speech: np.ndarray, rest: np.ndarray, kind: str,
                     n_fft: int, hop: int, targets=(0, 1)) -> dict[int, np.ndarray]:  # fmt: skip
    """The oracle mask ``kind`` applied to ``mix`` (samples,) for each of ``targets`` (0: the
    speech, 1: the rest), the other part as interference; each STFT computed once."""
    window = torch.hann_window(n_fft)
    spec, *parts = (torch.stft(torch.from_numpy(x), n_fft, hop, window=window,
                               return_complex=True) for x in (mix, speech, rest))  # fmt: skip
    return {t: torch.istft(spec * oracle_mask(parts[t], parts[1 - t], kind), n_fft, hop,
                           window=window, length=len(mix)).numpy()
            for t in targets}  # fmt: skip


def oracle_scores(cuts, kind: str, n_fft: int = 512, hop: int = 128) -> dict:
    """SI-SDRi lists by (query type, band) of the oracle mask ``kind`` on each mixture: the
    speech and the background of background mixtures (``class: ...``), one talker of the
    two-talker mixtures that have an enrollment (``enrolled speaker``)."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cut in cuts:
        mix, speech, rest = load_mixture(cut)
        if cut.custom["event"] == "speaker":
            pairs = [("enrolled speaker", 0)] if "enroll" in cut.custom else []
        else:
            pairs = [("class: speech", 0), ("class: background", 1)]
        if not pairs:
            continue
        waves = (speech, rest)
        ests = oracle_estimates(mix, speech, rest, kind, n_fft, hop, [t for _, t in pairs])
        for qtype, t in pairs:
            gain = _sisdr(ests[t], waves[t]) - _sisdr(mix, waves[t])
            scores[(qtype, snr_band(cut.custom["snr_db"]))].append(gain)
    return scores


def _spectrograms(mix, est, ref, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
    for ax, wave, name in zip(axes, (mix, est, ref), ("mixture", "estimate", "reference")):
        ax.specgram(wave + 1e-7, NFFT=512, Fs=16000, noverlap=384, cmap="magma", vmin=-130)
        ax.set_title(name)
        ax.set_xlabel("s")
    axes[0].set_ylabel("Hz")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _wer_rows(whisper: str, model: Separator | None, cuts, max_utts: int, remixes: list[float],
              oracles: list[str], stft: tuple[int, int], beam: int = 1) -> list[str]:  # fmt: skip
    """Whisper WER on English mixtures at <= 0 dB and on their clean speech, without and with
    the front end (class ``speech``, for each share ``remixes`` of the input added back), and
    on the mixtures through each oracle mask of ``oracles``."""
    from speechkit.inference import TranscribeOptions, Transcriber
    from speechkit.metrics import wer

    low = [c for c in cuts if c.custom["event"] != "speaker" and c.custom["snr_db"] <= 0
           and c.supervisions[0].language == "eng"][:max_utts]  # fmt: skip
    tr = Transcriber.load(whisper, TranscribeOptions(beam=beam, language="en"))
    refs = [c.supervisions[0].text for c in low]
    loaded = [load_mixture(c) for c in low]
    mixes, cleans = [x[0] for x in loaded], [x[1] for x in loaded]
    if model is not None:
        q = (torch.tensor([0]), torch.tensor([model.class_index("speech")]),
             torch.zeros(1, TEXT_DIM), torch.zeros(1, SPEAKER_DIM))  # fmt: skip

    def front(r: float):
        """The front end with a share ``r`` of the input added back (as ``Extractor(remix=r)``);
        whole mixtures in one pass, so the Conv-TasNet baseline serves too."""

        def run(wave: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                est = model(torch.from_numpy(wave)[None], *q)[0].numpy()
            return remix(est, wave, r)

        return run

    fronts = {r: front(r) for r in remixes} if model is not None else {}
    runs = [("noisy, no front end", mixes)]
    runs += [(f"noisy, front end, remix {r:g}", [f(w) for w in mixes]) for r, f in fronts.items()]
    runs += [(f"noisy, oracle {k.upper()} mask (ceiling)",
              [oracle_estimates(*x, k, *stft, targets=(0,))[0] for x in loaded])
             for k in oracles]  # fmt: skip
    runs += [("clean speech, no front end", cleans)]
    runs += [(f"clean speech, front end, remix {r:g}", [f(w) for w in cleans])
             for r, f in fronts.items()]  # fmt: skip
    base = {}
    rows = []
    for name, waves in runs:
        err = wer(refs, [r.text for r in tr(waves)])
        rate = err.rate
        key = name.split(",")[0]  # each row against its audio's "no front end" row
        rel = "-"
        if key not in base:
            base[key] = rate
        elif base[key]:
            rel = f"{100.0 * (rate - base[key]) / base[key]:+.0f} %"
        counts = f"{err.substitutions}s/{err.deletions}d/{err.insertions}i"
        rows.append(f"| {name} | {len(refs)} | {rate:.1f} ({counts}) | {rel} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], help="NAME=DIR of a separator")
    p.add_argument("--cuts", required=True, help="test mixtures (prepare_mixtures)")
    p.add_argument("--figures", help="directory for the spectrogram PNGs")
    p.add_argument("--wer-model", help="Whisper zoo name or packed dir for the downstream WER")
    p.add_argument("--wer-max", type=int, default=40, help="mixtures in the WER subset")
    p.add_argument("--wer-beam", type=int, default=1, help="Whisper's beam (1: greedy)")
    p.add_argument(
        "--wer-cuts",
        help="mixtures for the WER rows (default: --cuts); a larger set narrows the WER's spread",
    )
    p.add_argument(
        "--wer-remix",
        nargs="+",
        type=float,
        help="shares of the input the front end adds back, 0..1, a row each (default: 0)",
    )
    p.add_argument(
        "--oracle",
        action="append",
        default=[],
        choices=ORACLES,
        help="also score this oracle mask (the ceiling of a real mask); repeatable",
    )
    p.add_argument(
        "--oracle-stft",
        default="512/128",
        metavar="N_FFT/HOP",
        help="STFT of the oracle masks, in samples (default: the separator's 512/128)",
    )
    p.add_argument("--results-md", help="write the tables into this RESULTS.md")
    add_cite_argument(p)
    args = p.parse_args(argv)
    try:
        n_fft, hop = (int(x) for x in args.oracle_stft.split("/"))
        if not 0 < hop <= n_fft:
            raise ValueError
    except ValueError:
        p.error(f"--oracle-stft: give N_FFT/HOP in samples (0 < HOP <= N_FFT), for example "
                f"512/128, not {args.oracle_stft!r}")  # fmt: skip
    if not args.model and not args.oracle:
        p.error("give at least one --model NAME=DIR or --oracle MASK")
    if args.wer_model and not (args.model or args.oracle):
        p.error("--wer-model needs a --model or an --oracle (a front end whose WER it measures)")
    remixes = args.wer_remix or [0.0]
    if not all(0.0 <= r <= 1.0 for r in remixes):
        p.error(f"--wer-remix: give shares in [0, 1], not {remixes}")
    if args.wer_beam < 1:
        p.error(f"--wer-beam must be >= 1, got {args.wer_beam}")
    torch.set_num_threads(1)
    cuts = list(CutSet.from_file(args.cuts))
    queries = _Queries() if args.model else None  # encoders load only for models
    lines = ["| model | query | " + " | ".join(f"SI-SDRi {b} dB" for b in BANDS)
             + " | mean | n |", "|---|---|" + "---|" * (len(BANDS) + 2)]  # fmt: skip
    speed, wer_lines = [], []
    first = None

    def add_rows(name: str, scores: dict) -> None:
        for qtype in QUERY_TYPES:
            by_band = [scores.get((qtype, b), []) for b in BANDS]
            every = [x for s in by_band for x in s]
            if not every:
                continue
            cells = [f"{np.mean(s):.2f}" if s else "-" for s in by_band]
            lines.append(f"| {name} | {qtype} | {' | '.join(cells)} | {np.mean(every):.2f} | "
                         f"{len(every)} |")  # fmt: skip

    for spec in args.model:
        name, _, path = spec.partition("=")
        model = load_trained(path, ("separator", "convtasnet"))
        first = first or model
        res = evaluate(model, cuts, queries, Path(args.figures) if args.figures else None, name)
        add_rows(name, res["scores"])
        params = sum(p.numel() for p in model.parameters()) / 1e6
        speed.append(f"| {name} | {params:.2f} M | {res['rtf']:.3f} |")
    for kind in args.oracle:
        add_rows(f"oracle {kind.upper()} {n_fft}/{hop}", oracle_scores(cuts, kind, n_fft, hop))
    if args.wer_model:
        wer_cuts = list(CutSet.from_file(args.wer_cuts)) if args.wer_cuts else cuts
        wer_lines = ["| audio (English, SNR <= 0 dB) | utterances | WER % | vs. no front end |",
                     "|---|---|---|---|",
                     *_wer_rows(args.wer_model, first, wer_cuts, args.wer_max, remixes,
                                args.oracle, (n_fft, hop), args.wer_beam)]  # fmt: skip
    speed_lines = ["", "| model | parameters | RTF (1 thread) |", "|---|---|---|", *speed]
    report = "\n".join(lines + (speed_lines if speed else []) + ["", *wer_lines])
    print(report)
    if args.results_md:
        command = cited_command("separation", argv if argv is not None else sys.argv[1:],
                                args.cite_path)  # fmt: skip
        section = "\n".join(["## Separation: SI-SDR improvement by query and SNR band", "",
                             *provenance_lines(command), "", report, ""])  # fmt: skip
        update_markdown(Path(args.results_md), "Separation: SI-SDR improvement by query and SNR band",
                        section)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
