"""``speechkit bench <name>``: the verb that runs the benchmarks of speechkit.bench."""

from __future__ import annotations

import json
import sys

from lhotse import CutSet, MonoCut, SupervisionSegment

from speechkit.bench import BENCHMARKS
from speechkit.bin import bench, cli


def test_help_lists_every_benchmark_and_unknown_names_fail(capsys):
    assert bench.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in BENCHMARKS)
    assert bench.main([]) == 2
    assert bench.main(["no-such-bench"]) == 2
    assert "unknown benchmark 'no-such-bench'" in capsys.readouterr().err


def test_speechkit_bench_runs_the_module_with_its_arguments(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", sys.argv[:])  # cli.main sets it for the verb
    sup = SupervisionSegment("c0", "r0", 0.0, 1.0, language="eng", speaker="a")
    CutSet.from_cuts([MonoCut("c0", 0.0, 1.0, 0, supervisions=[sup])]).to_file(tmp_path / "c.jsonl")
    (tmp_path / "dec" / "asr_eng").mkdir(parents=True)
    rec = {"id": "c0", "ref": "one two", "hyp": "one", "score": 0.0}
    (tmp_path / "dec" / "asr_eng" / "hyps.jsonl").write_text(json.dumps(rec) + "\n")
    argv = ["--cuts", str(tmp_path / "c.jsonl"), "--decode-dir", str(tmp_path / "dec")]
    assert cli.main(["bench", "scores-by-speaker", *argv]) == 0  # `speechkit bench ...`
    assert capsys.readouterr().out.splitlines() == ["asr_eng: a WER 50.0 (1)"]
