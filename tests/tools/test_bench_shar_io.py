"""tools/bench_shar_io.py: both sources read every cut's audio once per pass, and the figures
land in a RESULTS.md section with their command."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.data.shar import export_shar

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "bench_shar_io.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_shar_io", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_shar_io"] = module
    spec.loader.exec_module(module)
    return module


def _corpus(root: Path, n: int = 7) -> Path:
    cuts = []
    for i in range(n):
        sf.write(root / f"u{i}.flac", [0.1 * (i % 3)] * (8000 + 1600 * i), 16000)
        cut = Recording.from_file(root / f"u{i}.flac").to_cut()
        cut.supervisions = [
            SupervisionSegment(f"s{i}", cut.recording_id, 0, cut.duration, text="x")
        ]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(root / "cuts.jsonl.gz")
    return root / "cuts.jsonl.gz"


def test_both_sources_read_every_cut_and_the_section_names_its_command(tmp_path):
    bench = _load()
    manifest = _corpus(tmp_path)
    export_shar(manifest, tmp_path / "shar", shard_size=3)
    results = bench.run(manifest, tmp_path / "shar", repeats=2, cold=True, seed=0)
    seconds = sum(c.duration for c in CutSet.from_file(manifest))
    for r in results.values():
        assert r["cuts"] == 7 and abs(r["audio_s"] - seconds) < 1e-6 and r["cuts_per_s"] > 0
    md = tmp_path / "RESULTS.md"
    argv = ["--cuts", str(manifest), "--shar", str(tmp_path / "shar"), "--repeats", "1"]
    assert bench.main([*argv, "--results-md", str(md)]) == 0
    text = md.read_text()
    assert (
        "| manifest (shuffled files) | 7 |" in text and "| Shar (sequential shards) | 7 |" in text
    )
    assert "- command: `python tools/bench_shar_io.py --cuts" in text and "warm page cache" in text
