"""The small phrasebook corpus the GPU check trains and transcribes on, ready in ``--work``.

    python tools/gpu_check/corpus.py --work WORK [--data PREPARED] [--hours 0.05] \
        --config conf/s2t/phrasebook_tiny.yaml

Writes ``WORK/cuts_{train,dev,...}.jsonl.gz`` (recording paths pointing at existing audio),
``WORK/tokenizer/``, ``WORK/buckets.yaml`` (2D duration x token buckets for the 2D batching
strategy), and ``WORK/long.flac`` with its reference ``WORK/long.txt``: English utterances one
after the other with 2 s of silence between them, 16 kHz mono, up to ``--long-seconds`` (several
of Whisper's 30 s windows).

The GPU machine may lack the speech synthesisers (espeak-ng, Piper) that generate the corpus, so
a corpus prepared elsewhere can be carried there and given as ``--data``: its manifests hold the
absolute audio paths of the machine that made them, which are redirected to ``--data``. Without
``--data`` the corpus is generated (``python -m speechkit.bin.prepare_phrasebook``). Exit code 77
(skipped) when neither is possible, with the reason on the last line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SKIPPED = 77  # exit status the GPU check records as "skipped"
GAP_SECONDS = 2.0
SAMPLE_RATE = 16000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True, help="where the corpus is made ready")
    p.add_argument("--data", type=Path, help="a phrasebook directory prepared elsewhere")
    p.add_argument("--hours", type=float, default=0.05, help="size of a generated corpus")
    p.add_argument("--config", type=Path, required=True, help="experiment YAML (tokenizer)")
    p.add_argument("--min-bucket-seconds", type=float, default=20.0)
    p.add_argument("--long-seconds", type=float, default=120.0, help="length of the long file")
    return p.parse_args(argv)


def relocate(src: Path, dst: Path) -> int:
    """Copies the cut manifests of ``src`` into ``dst`` with every recording path redirected
    into ``src/audio/<split>/``; returns the number of cuts whose audio exists there."""
    from lhotse import CutSet

    found = 0
    for manifest in sorted(src.glob("cuts_*.jsonl.gz")):
        cuts = []
        for cut in CutSet.from_file(manifest):
            for source in cut.recording.sources:
                old = Path(source.source)
                source.source = str(src / "audio" / old.parent.name / old.name)
                found += Path(source.source).is_file()
            cuts.append(cut)
        CutSet.from_cuts(cuts).to_file(dst / manifest.name)
    return found


def long_audio(work: Path, max_seconds: float) -> float:
    """``work/long.flac`` (English utterances with gaps, added until it is ``max_seconds``
    long) and ``long.txt``; returns its length in seconds."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet

    waves, texts, seconds = [], [], 0.0
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    for manifest in sorted(work.glob("cuts_*.jsonl.gz")):
        for cut in CutSet.from_file(manifest):
            if cut.supervisions[0].language == "eng" and seconds < max_seconds:
                seconds += cut.duration + GAP_SECONDS
                audio = cut.resample(SAMPLE_RATE).load_audio().mean(axis=0)
                waves += [audio.astype(np.float32), gap]
                texts.append(cut.supervisions[0].text.strip())
    if not waves:
        raise RuntimeError(f"no English utterance in {work}")
    wave = np.concatenate(waves)
    sf.write(work / "long.flac", wave, SAMPLE_RATE)
    (work / "long.txt").write_text(" ".join(texts) + "\n", encoding="utf-8")
    return len(wave) / SAMPLE_RATE


def _run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], check=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.data is not None:
        found = relocate(args.data.resolve(), args.work)
        if found == 0:
            print(f"skipped: no audio of the manifests found under {args.data}/audio")
            return SKIPPED
        print(f"relocated {found} recordings of {args.data}")
    else:
        prepare = ["-m", "speechkit.bin.prepare_phrasebook", "--out", str(args.work)]
        try:
            _run(*prepare, "--hours", str(args.hours), "--num-jobs", "4")
        except subprocess.CalledProcessError:
            print(
                "skipped: the phrasebook corpus cannot be generated here (speech synthesiser "
                "missing?); generate it elsewhere and pass it as --data"
            )
            return SKIPPED
    cuts = str(args.work / "cuts_train.jsonl.gz")
    tokenizer = str(args.work / "tokenizer")
    _run("-m", "speechkit.bin.train_tokenizer", "--config", str(args.config), "--cuts", cuts,
         "--out", tokenizer)  # fmt: skip
    _run("-m", "speechkit.bin.estimate_buckets", "--cuts", cuts, "--tokenizer", tokenizer,
         "--out", str(args.work / "buckets.yaml"),
         "--min-bucket-seconds", str(args.min_bucket_seconds))  # fmt: skip
    seconds = long_audio(args.work, args.long_seconds)
    print(f"corpus ready in {args.work}; long file {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
