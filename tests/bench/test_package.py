"""speechkit.bench (package): the benchmark table and the cited command lines."""

from __future__ import annotations

import argparse
import importlib

import pytest

from speechkit.bench import BENCHMARKS, add_cite_argument, cite_paths, cited_command


def test_every_benchmark_module_has_a_main_and_a_summary():
    for name, module in BENCHMARKS.items():
        mod = importlib.import_module(f"speechkit.bench.{module}")
        assert callable(mod.main), name
        assert mod.__doc__ and mod.__doc__.strip(), name


def test_cited_command_drops_cite_options_and_moves_cited_paths():
    p = argparse.ArgumentParser()
    add_cite_argument(p)
    p.add_argument("--cuts")
    argv = ["--cuts", "/tmp/x/data/cuts.jsonl.gz", "--cite-path", "/tmp/x/data/=data/pb"]
    args = p.parse_args(argv)
    assert args.cite_path == [("/tmp/x/data", "data/pb")]
    assert cited_command("padding", argv, args.cite_path) == (
        "python -m speechkit.bench.padding --cuts data/pb/cuts.jsonl.gz"
    )
    argv = ["--cite-path=/tmp/x/data=data/pb", "--cuts", "/tmp/x/data"]
    assert cited_command("m", argv, args.cite_path) == "python -m speechkit.bench.m --cuts data/pb"
    # only whole path components move: /tmp/x/database is not under /tmp/x/data
    assert cite_paths(["/tmp/x/database", "a b"], args.cite_path) == ["/tmp/x/database", "a b"]
    assert cited_command("m", ["a b"]) == "python -m speechkit.bench.m 'a b'"
    with pytest.raises(SystemExit):
        p.parse_args(["--cite-path", "no-equals-sign"])
