"""The model cache: where converted models live, how they are checked, locked and installed.

Layout (default root ``~/.cache/speechkit/models``, moved by ``$SPEECHKIT_CACHE``)::

    <root>/<name>/            a packed model (docs/design.md), verified against its meta.json
    <root>/.staging/<name>-*  work directories of downloads in progress (never read as models)
    <root>/.downloads/        partial and finished raw downloads, kept so a retry can resume
    <root>/.locks/<name>.lock held while <name> is being fetched

A model appears under ``<root>/<name>`` only through ``install``, which renames a finished,
verified directory into place, so readers never see a half-written model.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from speechkit.zoo.errors import ChecksumError, LockTimeoutError, ZooError
from speechkit.zoo.transfer import disk_full_error, sha256_file

__all__ = [
    "CACHE_ENV",
    "cache_root",
    "is_cached",
    "verify_packed",
    "model_lock",
    "staging_dir",
    "install",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "SPEECHKIT_CACHE"
META_FILE = "meta.json"
# in every packed layout (s2t adds tokenizer.model, listed in its meta.json); not imported from
# speechkit.pretrained because listing the zoo should not need torch
REQUIRED_FILES = ("config.yaml", "model.pt", "tokenizer.json")


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$SPEECHKIT_CACHE``, else ``~/.cache/speechkit/models``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "speechkit" / "models"


def is_cached(root: Path, name: str) -> bool:
    """Cheap test (no hashing): a finished model directory exists for ``name``."""
    return (root / name / META_FILE).is_file()


def verify_packed(directory: Path) -> dict:
    """Checks a packed directory against its meta.json; returns meta.json's content.

    Every file named in ``meta.json["sha256"]`` must match; config.yaml, model.pt and
    tokenizer.json (common to every model type) must be among them. Raises ``ChecksumError`` / ``ZooError`` naming the bad file.
    """
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise ZooError(f"{directory}: no {META_FILE}; not a packed speechkit model")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ZooError(f"{meta_path}: not valid JSON ({e})") from e
    sums = meta.get("sha256") or {}
    missing = [f for f in REQUIRED_FILES if f not in sums or not (directory / f).is_file()]
    if missing:
        raise ZooError(f"{directory}: packed model lacks {', '.join(missing)} (or their sha256)")
    for name, digest in sums.items():
        path = directory / name
        if not path.is_file():
            raise ZooError(f"{path}: listed in {META_FILE} but missing")
        if sha256_file(path) != digest:
            raise ChecksumError(f"{path}: sha256 does not match {META_FILE}")
    return meta


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
    """A fresh ``<root>/.staging/<name>-<random>``, removed (with anything left in it) on exit."""
    base = root / ".staging"
    try:
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full_error(base) from e
        raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def install(packed: Path, root: Path, name: str, zoo_meta: dict) -> Path:
    """Moves the verified packed directory ``packed`` to ``<root>/<name>`` atomically.

    ``zoo_meta`` (which source, when) is added to meta.json under ``"zoo"``; meta.json itself is
    not checksummed, so this does not disturb verification. An existing model is replaced: it is
    first renamed aside, so ``<root>/<name>`` is always either the old or the new model.
    """
    meta_path = packed / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["zoo"] = zoo_meta
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    target = root / name
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{name}-old-", dir=root / ".staging")) / name
        os.replace(target, old)
    os.replace(packed, target)
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
    logger.info("installed %s in %s", name, target)
    return target
