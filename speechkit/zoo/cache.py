"""The model cache: where converted models live, how they are checked, locked and installed.

Layout (default root ``~/.cache/speechkit/models``, moved by ``$SPEECHKIT_CACHE``)::

    <root>/<name>/            a packed model (docs/design.md), verified against its meta.json
    <root>/.staging/<name>/   the work directory of the fetch of <name> in progress
    <root>/.replaced/<name>/  an old copy of <name> during a replacement (see ``install``)
    <root>/.downloads/        partial and finished raw downloads, kept so a retry can resume
    <root>/.locks/<name>.lock held while <name> is being fetched, verified or replaced

A model appears under ``<root>/<name>`` only through ``install``, which renames a finished,
fully verified directory into place, so readers never see a half-written model.

Verification is paid once: ``install`` and ``verify`` hash every file and record, in meta.json,
each file's size, mtime and inode (speechkit/integrity.py); ``is_current`` then checks a cached
model with a few ``stat`` calls, and only files whose record no longer holds are hashed again.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from speechkit.checkpoint import atomic_write_text
from speechkit.integrity import IntegrityError, UnsafePathError, check_files, stale
from speechkit.zoo.errors import ChecksumError, LockTimeoutError, ZooError
from speechkit.zoo.transfer import disk_full_error

__all__ = [
    "CACHE_ENV",
    "cache_root",
    "is_cached",
    "is_current",
    "verify_packed",
    "record_verified",
    "model_lock",
    "staging_dir",
    "install",
    "leftovers",
    "tidy",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "SPEECHKIT_CACHE"
META_FILE = "meta.json"
# in every packed layout (s2t adds tokenizer.model, listed in its meta.json); not imported from
# speechkit.pretrained because listing the zoo should not need torch
REQUIRED_FILES = ("config.yaml", "model.pt")
# models that read or write text also need their tokenizer; a codec (meta.json "model_type":
# "codec") maps audio to codes and has none
TEXT_FILES = ("tokenizer.json",)
TEXTLESS_MODEL_TYPES = ("codec",)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$SPEECHKIT_CACHE``, else ``~/.cache/speechkit/models``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "speechkit" / "models"


def is_cached(root: Path, name: str) -> bool:
    """Cheap test (no hashing): a finished model directory exists for ``name``."""
    return (root / name / META_FILE).is_file()


def _read_meta(directory: Path) -> dict:
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise ZooError(f"{directory}: no {META_FILE}; not a packed speechkit model")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{meta_path}: not valid JSON ({e})") from e
    sums = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(sums, dict):
        raise ZooError(f"{meta_path}: no sha256 table")
    required = REQUIRED_FILES
    if meta.get("model_type") not in TEXTLESS_MODEL_TYPES:
        required += TEXT_FILES
    missing = [f for f in required if f not in sums]
    if missing:
        raise ZooError(f"{directory}: packed model lacks {', '.join(missing)} (or their sha256)")
    return meta


def _no_links(directory: Path) -> None:
    """A packed model holds regular files only: a link could point anywhere."""
    for path in directory.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ChecksumError(f"{path}: a link or special file; a packed model holds files only")


def verify_packed(directory: Path, full: bool = False) -> tuple[dict, list[str]]:
    """Checks a packed directory against its meta.json; returns (meta.json's content with fresh
    ``verified`` records, the names that had to be hashed).

    Every file named in ``meta.json["sha256"]`` must match; config.yaml and model.pt must be
    among them, and tokenizer.json unless ``meta.json["model_type"]`` is textless (a codec). Files whose verification
    record still holds are not read, unless ``full`` (which also ignores any record that came
    with the directory). Raises ``ChecksumError`` / ``ZooError`` naming the bad file.
    """
    meta = _read_meta(directory)
    _no_links(directory)
    try:
        records, hashed = check_files(
            directory, meta["sha256"], None if full else meta.get("verified"), full
        )
    except (IntegrityError, UnsafePathError) as e:
        raise ChecksumError(str(e)) from e
    meta["verified"] = records
    return meta, hashed


def is_current(root: Path, name: str) -> bool:
    """True when ``<root>/<name>`` is a model whose every file still has its verification record
    (a few ``stat`` calls, no hashing); False means: lock, then ``verify_packed``."""
    try:
        meta = _read_meta(root / name)
    except ZooError:
        return False
    return not stale(root / name, meta["sha256"], meta.get("verified"))


def record_verified(directory: Path, meta: dict) -> None:
    """Writes ``meta`` (with its ``verified`` records) to ``directory/meta.json`` atomically."""
    atomic_write_text(directory / META_FILE, json.dumps(meta, indent=2) + "\n")


@contextlib.contextmanager
def model_lock(root: Path, name: str, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive lock on ``name`` across processes and threads (an OS lock on a file).

    Each call opens its own file handle, and OS locks belong to the handle, so two threads of
    one process exclude each other too. The lock dies with its process: no stale locks.
    """
    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{name}.lock"
    deadline = time.monotonic() + timeout
    with open(path, "a+b") as handle:
        waited = False
        while not _try_lock(handle):
            if not waited:
                logger.info("waiting for another download of %s (lock %s)", name, path)
                waited = True
            if time.monotonic() > deadline:
                raise LockTimeoutError(
                    f"another process has been fetching '{name}' for over {timeout:.0f} s "
                    f"(lock {path}); wait for it or stop it"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(handle)


def _try_lock(handle) -> bool:
    try:
        if os.name == "nt":  # pragma: no cover - exercised on Windows only
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
            return False
        raise


def _unlock(handle) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def staging_dir(root: Path, name: str) -> Iterator[Path]:
    """A fresh ``<root>/.staging/<name>/<random>``, removed (with anything left in it) on exit.

    Call it with ``name``'s lock held (after ``tidy``).
    """
    base = root / ".staging" / name
    path = base / uuid.uuid4().hex[:8]
    try:
        path.mkdir(parents=True)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full_error(base) from e
        raise
    try:
        yield path
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two directory entries in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``);
    False where the system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc < 2.28, musl)
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def install(packed: Path, root: Path, name: str, meta: dict) -> Path:
    """Moves the fully verified packed directory ``packed`` to ``<root>/<name>``.

    ``meta`` (from ``verify_packed(packed, full=True)``, with ``"zoo"``: which source, when) is
    written as meta.json first; meta.json is not in its own sha256 table, so this does not
    disturb verification. An existing model is replaced in one atomic exchange of the two
    directories where the system allows (Linux), so ``<root>/<name>`` is always the old model or
    the new one. Elsewhere the old one is first renamed to ``.replaced/<name>``; if the process
    dies before the new one takes its place, ``tidy`` puts it back on the next call.
    """
    record_verified(packed, meta)
    target = root / name
    if not target.exists():
        os.replace(packed, target)
    elif _exchange(packed, target):
        shutil.rmtree(packed, ignore_errors=True)  # now the old model
    else:
        aside = root / ".replaced" / name / uuid.uuid4().hex[:8]
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, aside)
        os.replace(packed, target)
        shutil.rmtree(aside.parent, ignore_errors=True)
    logger.info("installed %s in %s", name, target)
    return target


def leftovers(root: Path, name: str) -> bool:
    """Whether a fetch or install of ``name`` died and left work for ``tidy`` (two ``stat``s)."""
    return (root / ".staging" / name).exists() or (root / ".replaced" / name).exists()


def tidy(root: Path, name: str) -> None:
    """Cleans up after a fetch of ``name`` that died: removes its staging directory, and
    finishes an ``install`` stopped between its two renames (the old model is put back if no
    model took its place, else dropped). Call with ``name``'s lock held."""
    shutil.rmtree(root / ".staging" / name, ignore_errors=True)
    replaced = root / ".replaced" / name
    if not replaced.is_dir():
        return
    old = [p for p in replaced.iterdir() if (p / META_FILE).is_file()]
    if old and not (root / name).exists():
        os.replace(max(old, key=lambda p: p.stat().st_mtime_ns), root / name)
        logger.warning("restored %s, whose replacement was interrupted", root / name)
    shutil.rmtree(replaced, ignore_errors=True)
