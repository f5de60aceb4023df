"""Run a benchmark of ``speechkit.bench``: ``speechkit bench <name> [args]``.

    speechkit bench --help                      # the benchmarks
    speechkit bench padding --config conf/s2t/phrasebook_tiny.yaml --cuts data/cuts_train.jsonl.gz

``speechkit bench <name> ARGS`` is ``python -m speechkit.bench.<module> ARGS`` (names use
dashes, modules underscores; the table is ``speechkit.bench.BENCHMARKS``).
"""

from __future__ import annotations

import importlib
import sys

from speechkit.bench import BENCHMARKS


def _usage() -> str:
    lines = []
    for name, module in BENCHMARKS.items():
        doc = importlib.import_module(f"speechkit.bench.{module}").__doc__ or ""
        lines.append(f"  {name:20s} {doc.strip().splitlines()[0] if doc.strip() else ''}")
    return "usage: speechkit bench <name> [args]   (speechkit bench <name> --help)\n\n" + "\n".join(
        ["benchmarks:", *lines]
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name = argv[0]
    if name not in BENCHMARKS:
        known = ", ".join(BENCHMARKS)
        print(f"speechkit bench: unknown benchmark {name!r}; known: {known}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"speechkit.bench.{BENCHMARKS[name]}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
