"""Benchmarks and diagnostics: figures a recipe cites in its RESULTS.md, measured by the package.

Each module is one measurement with a ``main(argv)``; run it as ``speechkit bench <name> ...``
or ``python -m speechkit.bench.<module> ...``. Each prints its figures and, with
``--results-md FILE``, writes (or replaces) its section of that file with the command, date and
machine (:mod:`speechkit.report`). They read any lhotse cut manifest (or, for the Whisper ones, a
directory of audio files with a Kaldi-style ``text`` reference list); the phrasebook recipe is one
user among others.

=====================  ========================  ================================================
name                   module                    what it measures
=====================  ========================  ================================================
``padding``            ``padding.py``            padding of training batches, bucketing on / off
``throughput``         ``throughput.py``         padding, peak memory and training throughput of
                                                 five batching strategies
``encdec-split``       ``encdec_split.py``       decode speed and WER of two equal-size models
                                                 (trains and decodes through the CLIs)
``audio-dependence``   ``audio_dependence.py``   whether a model's decoder uses the audio
``scores-by-speaker``  ``scores_by_speaker.py``  WER / BLEU of a decode directory per speaker
``whisper-speed``      ``whisper_speed.py``      speechkit transcribe vs faster-whisper: WER,
                                                 identical transcripts, RTFx (fp32, int8)
``whisper-profile``    ``whisper_profile.py``    one utterance: encoder vs decoding time, top ops
``whisper-int8``       ``whisper_int8.py``       int8 layer choices: identity to float32, WER,
                                                 speed
``whisper-window``     ``whisper_window.py``     Whisper WER with and without its 30 s window
``separation``         ``separation.py``         SI-SDRi by query type and SNR band, RTF,
                                                 spectrograms, Whisper WER +/- the front end
``separation-long``    ``separation_long.py``    speechkit separate on a 10-minute file: RTF,
                                                 peak memory against a 1-minute one
``codec``              ``codec.py``              speech codecs (speechkit's, Opus, Codec2): PESQ,
                                                 STOI, SI-SDR, speaker similarity, WER, RTFx
``vocoder``            ``vocoder.py``            TTS vocoder vs Griffin-Lim on reference mels:
                                                 PESQ, STOI, mel distance, RTF on 1 and 2 threads
``tts-speed``          ``tts_speed.py``          TTS speed: acoustic model and vocoder apart,
                                                 Piper and espeak-ng on the same sentences
``tts-augment``        ``tts_augment.py``        S2T with and without synthesised data: WER /
                                                 BLEU on added and not-added test sentences
``prune``              ``prune.py``              gated (pruned) vs full model: RTFx at batch 1
                                                 and batched, interleaved; GFLOPs, sparsity
``prune-whisper``      ``prune_whisper.py``      gated vs full Whisper: WER and RTFx, interleaved
``whisper-gate-map``   ``whisper_gate_map.py``   gated Whisper per budget: decoder modules run,
                                                 sparsity, WER, gate map picture
=====================  ========================  ================================================

Floors: a benchmark sits beside ``speechkit.bin`` (an entry point); it may use the model, data,
decoding, zoo and ``speechkit.train.batch_search``, and ``encdec-split`` runs the ``train`` and
``decode`` verbs through their ``main(argv)``, the same command line it cites. Nothing below
imports this package. Reference systems (faster-whisper, CTranslate2) and the phrasebook
synthesiser are imported only by the benchmarks that use them (``pip install
'speechkit[dev]'``).
"""

from __future__ import annotations

import argparse
import shlex

__all__ = [
    "BENCHMARKS",
    "add_cite_argument",
    "cite_paths",
    "cited_command",
    "read_paths_line",
    "write_section",
]

# ``speechkit bench <name>`` -> module of this package.
BENCHMARKS = {
    "padding": "padding",
    "throughput": "throughput",
    "encdec-split": "encdec_split",
    "audio-dependence": "audio_dependence",
    "scores-by-speaker": "scores_by_speaker",
    "whisper-speed": "whisper_speed",
    "whisper-profile": "whisper_profile",
    "whisper-window": "whisper_window",
    "whisper-int8": "whisper_int8",
    "separation": "separation",
    "separation-long": "separation_long",
    "codec": "codec",
    "vocoder": "vocoder",
    "tts-speed": "tts_speed",
    "tts-augment": "tts_augment",
    "prune": "prune",
    "prune-whisper": "prune_whisper",
    "whisper-gate-map": "whisper_gate_map",
}
_CITE = "--cite-path"


def add_cite_argument(parser: argparse.ArgumentParser) -> None:
    """``--cite-path REAL=SHOWN`` (repeatable): the command written to RESULTS.md shows paths
    under REAL as under SHOWN, e.g. a run on a copy of a recipe's corpus cites the recipe's own
    ``data/...`` path, so that a reader can paste the command into the recipe directory."""
    parser.add_argument(
        _CITE,
        dest="cite_path",
        action="append",
        default=[],
        metavar="REAL=SHOWN",
        type=_pair,
        help="cite paths under REAL as SHOWN in the written command (the real path is noted)",
    )


def _pair(value: str) -> tuple[str, str]:
    real, sep, shown = value.partition("=")
    if not sep or not real:
        raise argparse.ArgumentTypeError(f"expected REAL=SHOWN, got {value!r}")
    return real.rstrip("/") or "/", shown.rstrip("/")


def cited_command(module: str, argv: list[str], cite: list[tuple[str, str]] = ()) -> str:
    """The shell command that reproduces a run: ``python -m speechkit.bench.<module> argv``,
    without its ``--cite-path`` options and with each path under a REAL shown under SHOWN."""
    args, skip = [], False
    for a in argv:
        if skip or a.startswith(f"{_CITE}="):
            skip = False
            continue
        if a == _CITE:
            skip = True
            continue
        args.append(a)
    return shlex.join(["python", "-m", f"speechkit.bench.{module}", *cite_paths(args, cite)])


def cite_paths(args: list[str], cite: list[tuple[str, str]]) -> list[str]:
    """``args`` with each path under a REAL of ``cite`` moved under its SHOWN."""
    out = []
    for a in args:
        for real, shown in cite:
            if a == real or a.startswith(real + "/"):
                a = shown + a[len(real) :]
                break
        out.append(a)
    return out


def read_paths_line(cite: list[tuple[str, str]]) -> list[str]:
    """A markdown bullet naming the paths actually read where ``--cite-path`` renamed them."""
    if not cite:
        return []
    where = "; ".join(f"`{real}` (cited as `{shown}`)" for real, shown in cite)
    return [f"- data read for this run: {where}"]


def write_section(
    path, title: str, module: str, argv: list[str], cite: list[tuple[str, str]], lines: list[str]
) -> None:
    """Writes (or replaces) the section ``## title`` of the markdown file ``path``: the command
    that reproduces the run (``cited_command``), date and machine, the paths read, ``lines``."""
    from speechkit.report import provenance_lines, update_markdown

    command = cited_command(module, argv, cite)
    section = [f"## {title}", "", *provenance_lines(command), *read_paths_line(cite), "", *lines]
    update_markdown(path, title, "\n".join(section) + "\n")
