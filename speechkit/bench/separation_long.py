"""Long recordings through ``speechkit separate``: real-time factor and peak memory vs length.

    python -m speechkit.bench.separation_long --model exp/sep_supervised --minutes 10 \\
        --cuts data/mixtures/cuts_test.jsonl.gz --work data/long --results-md RESULTS.md

Writes a recording of ``--minutes`` minutes (test mixtures end to end, 16 kHz WAV) and a 1-minute
one, runs ``speechkit separate --query speech`` on each in a fresh process (one thread) and
reports wall time, RTF and the process's peak resident memory: chunked processing keeps the
peak near that of the short file, whatever the length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet

from speechkit.bench import add_cite_argument, cited_command
from speechkit.report import provenance_lines, update_markdown

__all__ = ["main", "write_long"]

TITLE = "Separation: long recordings (speechkit separate, chunked)"


def write_long(cuts_path: str, minutes: float, path: Path) -> float:
    """Writes mixtures end to end until ``minutes``, block by block; returns the seconds."""
    target = int(minutes * 60 * 16000)
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", 16000, 1, subtype="PCM_16") as out:
        while written < target:
            for cut in CutSet.from_file(cuts_path):
                wave = cut.load_audio()[0][: target - written]
                out.write(np.clip(wave, -1, 1))
                written += len(wave)
                if written >= target:
                    break
    return written / 16000


def run_separate(model: str, src: Path, dst: Path, chunk_s: float) -> dict:
    cmd = [sys.executable, "-m", "speechkit.bin.separate", "--model", model, "--query", "speech",
           str(src), "-o", str(dst), "--threads", "1", "--chunk-s", str(chunk_s)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="separator experiment dir")
    p.add_argument("--cuts", required=True, help="mixtures to concatenate")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--chunk-s", type=float, default=8.0)
    p.add_argument("--work", required=True, help="directory for the long files")
    p.add_argument("--results-md")
    add_cite_argument(p)
    args = p.parse_args(argv)
    work = Path(args.work)
    rows = ["| input | seconds | wall s | RTF | peak RSS MiB |", "|---|---|---|---|---|"]
    for minutes in (1.0, args.minutes):
        src = work / f"long_{minutes:g}min.wav"
        seconds = write_long(args.cuts, minutes, src)
        res = run_separate(args.model, src, work / f"long_{minutes:g}min.sep.wav", args.chunk_s)
        rows.append(f"| {minutes:g} min | {seconds:.0f} | {res['wall_s']} | {res['rtf']} | "
                    f"{res['peak_rss_mib']} |")  # fmt: skip
    report = "\n".join(rows)
    print(report)
    if args.results_md:
        command = cited_command("separation_long", argv if argv is not None else sys.argv[1:],
                                args.cite_path)  # fmt: skip
        section = "\n".join([f"## {TITLE}", "", *provenance_lines(command), "", report, ""])
        update_markdown(Path(args.results_md), TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
