"""Where a short utterance's time goes: encoder vs decoding, speechkit vs faster-whisper.

    speechkit bench whisper-profile [--model whisper-tiny.en] [--audio talk.wav] [--repeats 7]

(or ``python -m speechkit.bench.whisper_profile ...``; needs ``pip install 'speechkit[dev]'``).
The utterance: ``--audio`` (any audio file), else one English phrasebook sentence by the first
test voice (about 2.3 s; needs espeak-ng). ``--model``: a zoo name or packed directory, with
``--ct2-dir`` its CTranslate2 files (for ``whisper-tiny.en`` and ``whisper-base`` those of the
PyPI weight packages by default). Prints medians of ``--repeats``: each system's encoder on a
30 s window (speechkit ``model.encode``; CTranslate2 ``model.encode``), each full transcription
(beam 5, no timestamps), the difference (decoding), and speechkit's slowest ops with their input
shapes (torch.profiler).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechkit.bench.whisper_speed import ct2_dir, fw_options
from speechkit.data.audio import load_audio
from speechkit.inference import TranscribeOptions, Transcriber

SENTENCE = "Where can I buy a bottle of water, please?"


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def utterance(path: Path | None) -> np.ndarray:
    """(S,) float32 16 kHz: the file at ``path``, else ``SENTENCE`` by a phrasebook test voice."""
    if path is not None:
        from lhotse import Recording

        return load_audio(Recording.from_file(path).to_cut())
    from speechkit.data.phrasebook.voices import make_speakers, synthesize

    return synthesize(SENTENCE, make_speakers(["eng"], 0)["test"][0])


def main(argv: list[str] | None = None) -> int:
    import ctranslate2
    from faster_whisper import WhisperModel
    from torch.profiler import ProfilerActivity, profile

    p = argparse.ArgumentParser(
        prog="speechkit bench whisper-profile", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model", default="whisper-tiny.en", help="zoo name or packed directory")
    p.add_argument("--ct2-dir", type=Path, help="CTranslate2 files of the same weights")
    p.add_argument("--audio", type=Path, help="the utterance (default: a phrasebook sentence)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    wave = utterance(args.audio)
    tr = Transcriber.load(args.model, TranscribeOptions(beam=5))
    with tempfile.TemporaryDirectory() as work:
        ct2 = args.ct2_dir or ct2_dir(args.model, Path(work))
        fw = WhisperModel(str(ct2), device="cpu", compute_type="float32",
                          cpu_threads=args.threads, num_workers=1)  # fmt: skip
    n_mels = tr.model.cfg.n_mels
    window = torch.randn(1, 3000, n_mels)
    with torch.inference_mode():
        enc_sk = median_time(lambda: tr.model.encode(window, torch.tensor([3000])), args.repeats)
    features = ctranslate2.StorageView.from_array(np.random.randn(1, n_mels, 3000).astype("f4"))
    enc_fw = median_time(lambda: fw.model.encode(features), args.repeats)
    kwargs = fw_options(5)
    full_sk = median_time(lambda: tr([wave]), args.repeats)
    full_fw = median_time(lambda: list(fw.transcribe(wave, **kwargs)[0]), args.repeats)
    print(f"{args.model}, {len(wave) / 16000:.1f} s utterance, {args.threads} threads, "
          f"medians of {args.repeats}")  # fmt: skip
    print(f"encoder (30 s window): speechkit {enc_sk:.3f} s, CTranslate2 {enc_fw:.3f} s")
    print(f"full transcription:    speechkit {full_sk:.3f} s, faster-whisper {full_fw:.3f} s")
    print(f"decoding (difference): speechkit {full_sk - enc_sk:.3f} s, "
          f"faster-whisper {full_fw - enc_fw:.3f} s")  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        tr([wave])
    table = prof.key_averages(group_by_input_shape=True)
    print(table.table(sort_by="self_cpu_time_total", row_limit=8))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
