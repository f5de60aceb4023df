"""The ``speechkit`` command: ``speechkit <verb> [args]`` runs ``python -m speechkit.bin.<verb>``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import speechkit.bin


def _verbs() -> list[str]:
    return sorted(
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(speechkit.bin.__path__)
        if m.name not in ("cli", "__main__")
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: speechkit <verb> [args]\n\nverbs:\n  " + "\n  ".join(_verbs()))
        return 0 if argv else 2
    verb = argv[0].replace("-", "_")
    if verb.replace("_", "-") not in _verbs():
        print(f"speechkit: unknown verb '{argv[0]}'; known: {', '.join(_verbs())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"speechkit.bin.{verb}")
    sys.argv = [f"speechkit {argv[0]}", *argv[1:]]
    result = module.main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
