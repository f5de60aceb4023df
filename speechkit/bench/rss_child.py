"""One system's peak resident memory, in a fresh process: ``python -m speechkit.bench.rss_child``.

    python -m speechkit.bench.rss_child SYSTEM MODEL CT2_DIR PRECISION WAVES.npz THREADS BEAM BATCH

SYSTEM ``sk`` loads speechkit's ``Transcriber`` (``MODEL``: zoo name or packed directory) and
transcribes the waves ``BATCH`` per call; ``fw`` loads faster-whisper on ``CT2_DIR`` and
transcribes them one at a time. Prints the peak RSS in MiB, with the RSS that the imports alone
took, as ``peak_mib imports_mib``.

Why a module of its own: the child must import only what its system needs. faster-whisper does
not use torch, and torch's import alone is hundreds of MiB resident (513 MiB for the CUDA build
of torch 2.14.1 on the 2-core machine, 219 MiB for the CPU-only 2.13.0 wheel), so a child that
imports the benchmark module (which imports torch) overstates faster-whisper's memory. Nothing
here imports torch unless SYSTEM is ``sk``.

Peak: ``VmHWM`` of /proc/self/status where there is one (Linux's ``ru_maxrss`` keeps the parent's
peak across fork and exec), else ``ru_maxrss``.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_mib() -> float:
    """This process's peak resident set size in MiB."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    hwm = [ln for ln in lines if ln.startswith("VmHWM:")]
    kib = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def main(argv: list[str]) -> None:
    system, model, ct2, precision, npz, threads, beam, batch = argv
    threads, beam, batch = int(threads), int(beam), int(batch)
    if system not in ("sk", "fw"):
        raise SystemExit(f"rss_child: SYSTEM must be sk or fw, got {system!r}")
    import numpy as np

    if system == "sk":
        import torch

        from speechkit.decode.whisper import TranscribeOptions
        from speechkit.inference import Transcriber

        torch.set_num_threads(threads)
        imports = peak_mib()
        tr = Transcriber.load(model, TranscribeOptions(beam=beam, batch_size=batch),
                              int8=precision == "int8")  # fmt: skip
        transcribe = tr
    else:
        from faster_whisper import WhisperModel

        imports = peak_mib()
        fw = WhisperModel(ct2, device="cpu", compute_type=precision, cpu_threads=threads,
                          num_workers=1)  # fmt: skip

        def transcribe(ws):
            for wave in ws:
                list(fw.transcribe(wave, beam_size=beam, without_timestamps=True,
                                   temperature=0.0, condition_on_previous_text=False,
                                   vad_filter=False)[0])  # fmt: skip

    waves = list(np.load(npz).values())
    for i in range(0, len(waves), batch):
        transcribe(waves[i : i + batch])
    print(f"{peak_mib():.1f} {imports:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
