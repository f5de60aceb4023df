"""Trusting files on disk: SHA-256 sums, names that must stay inside a directory, and the record
that lets a load skip re-hashing a model that was verified before.

Hashing a 1B-parameter model costs seconds per load, so a verified directory keeps, per file, the
digest it was checked against with the file's size, modification time (ns) and inode::

    meta.json  {"sha256": {"model.pt": "ab12..."}, "verified": {"model.pt":
                {"sha256": "ab12...", "size": 4083021312, "mtime_ns": 1717..., "ino": 1311}}}

A file whose size, mtime and inode still match its record, and whose record names the digest
meta.json expects, is taken as verified without reading it (what make, rsync and git's index
assume). Anything else is hashed again. This guards against truncated, replaced or half-copied
files; a change that keeps size and mtime (deliberate tampering, bit rot) needs a full check
(``check_files(..., full=True)``, ``speechkit zoo verify NAME``). The record is local to one
file system: a copy gets new inodes, so it is hashed once again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "IntegrityError",
    "UnsafePathError",
    "check_files",
    "file_record",
    "relative_parts",
    "safe_join",
    "sha256_file",
    "stale",
]

CHUNK = 1 << 20  # bytes per read


class IntegrityError(ValueError):
    """A file is missing, is not a regular file, or does not match its expected SHA-256."""


class UnsafePathError(ValueError):
    """A name from outside (a manifest, an archive, a hub listing) would leave its directory."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def relative_parts(name: str, what: str = "name") -> tuple[str, ...]:
    """The components of ``name``, a relative forward-slash path that cannot leave its directory.

    Refused, with ``UnsafePathError`` naming ``what`` it came from: empty names, absolute paths
    (``/x``, ``C:/x``), ``..``, ``.`` or empty components, backslashes and NUL.
    """
    parts = name.split("/") if isinstance(name, str) else [""]
    bad = (
        not isinstance(name, str)
        or "\\" in name
        or "\0" in name
        or (len(name) > 1 and name[1] == ":")  # a Windows drive
        or any(p in ("", ".", "..") for p in parts)
    )
    if bad:
        raise UnsafePathError(f"refusing {what} {name!r}: not a plain relative path")
    return tuple(parts)


def safe_join(root: str | Path, name: str, what: str = "name") -> Path:
    """``root / name`` for a ``name`` that passes ``relative_parts`` and does not resolve outside
    ``root`` through a symlink already on disk; ``UnsafePathError`` otherwise."""
    root = Path(root)
    path = root.joinpath(*relative_parts(name, what))
    if not path.resolve().is_relative_to(root.resolve()):
        raise UnsafePathError(f"refusing {what} {name!r}: it resolves outside {root}")
    return path


def file_record(path: Path, digest: str) -> dict:
    """What ``check_files`` stores for ``path``, verified to hash to ``digest``."""
    st = path.stat()
    return {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _unchanged(path: Path, digest: str, record: Mapping | None) -> bool:
    if not isinstance(record, Mapping) or record.get("sha256") != digest:
        return False
    try:
        st = path.stat(follow_symlinks=False)
    except OSError:
        return False
    return (record.get("size"), record.get("mtime_ns"), record.get("ino")) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )


def stale(
    directory: str | Path, sums: Mapping[str, str], recorded: Mapping[str, Mapping] | None
) -> list[str]:
    """The names of ``sums`` whose verification record in ``recorded`` no longer holds (one
    ``stat`` per file, nothing is read); an unsafe name counts as stale."""
    recorded = recorded if isinstance(recorded, Mapping) else {}
    out = []
    for name, digest in sums.items():
        try:
            path = safe_join(directory, name)
        except UnsafePathError:
            out.append(name)
            continue
        if not _unchanged(path, digest, recorded.get(name)):
            out.append(name)
    return out


def check_files(
    directory: str | Path,
    sums: Mapping[str, str],
    recorded: Mapping[str, Mapping] | None = None,
    full: bool = False,
) -> tuple[dict[str, dict], list[str]]:
    """Checks each file of ``sums`` ({name inside ``directory``: sha256}); returns the records to
    store for them and the names that were hashed (empty when every record still held).

    A file with an unchanged record in ``recorded`` is not read, unless ``full``. Raises
    ``UnsafePathError`` for a name that leaves ``directory``, ``IntegrityError`` for a missing
    file, a symlink or other non-regular file, or a digest mismatch (naming the file).
    """
    directory = Path(directory)
    recorded = recorded if isinstance(recorded, Mapping) else {}
    records: dict[str, dict] = {}
    hashed: list[str] = []
    for name, digest in sums.items():
        path = safe_join(directory, name, "file name in meta.json")
        if path.is_symlink() or not path.is_file():
            what = "a link" if path.is_symlink() else "missing or not a regular file"
            raise IntegrityError(f"{path}: {what}; a packed model holds regular files only")
        if not full and _unchanged(path, digest, recorded.get(name)):
            records[name] = dict(recorded[name])
            continue
        got = sha256_file(path)
        if got != digest:
            raise IntegrityError(
                f"{path}: sha256 does not match meta.json (expected {digest}, got {got}); the "
                "file is corrupt or was modified"
            )
        records[name] = file_record(path, digest)
        hashed.append(name)
    return records, hashed
