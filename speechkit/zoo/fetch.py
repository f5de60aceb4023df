"""Fetching a named model into the cache: the order of events, and what happens on failure.

``download(name)``:

1. a cached copy whose files all still match their verification records (size, mtime, inode:
   no hashing, see speechkit/integrity.py) is returned at once, without network;
2. otherwise the model's lock is taken (a concurrent download of the same model waits, then
   finds the cache filled by the other one); what a killed fetch left is cleaned up (an
   interrupted replacement finished or undone), and a cached copy whose changed files still
   hash to meta.json's sums is re-recorded and returned;
3. each source is tried in registry order inside its own staging directory; the first one that
   yields a packed model passing a full verification is renamed into the cache, its records
   written;
4. if all fail, ``AllSourcesFailed`` lists every source and why it failed.

``verify(name)`` (``speechkit zoo verify NAME``) hashes every file of a cached model again,
whatever its records say, and renews them.

Offline mode (``offline=True`` or ``SPEECHKIT_OFFLINE=1``) skips every source that needs the
network; a cached model is still served. A full disk stops everything at once (other sources
would fail the same way) and leaves nothing half-written in the cache.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

from speechkit.integrity import UnsafePathError
from speechkit.zoo.cache import (
    cache_root,
    install,
    is_cached,
    is_current,
    leftovers,
    model_lock,
    record_verified,
    staging_dir,
    tidy,
    verify_packed,
)
from speechkit.zoo.errors import (
    AllSourcesFailed,
    DiskFullError,
    OfflineError,
    ZooError,
)
from speechkit.zoo.registry import ModelEntry, SourceSpec, get_entry
from speechkit.zoo.sources import FetchContext, make_source
from speechkit.zoo.transfer import disk_full_error

__all__ = ["download", "load", "verify", "offline_mode", "OFFLINE_ENV"]

logger = logging.getLogger(__name__)

OFFLINE_ENV = "SPEECHKIT_OFFLINE"


def offline_mode(flag: bool | None = None) -> bool:
    """``flag`` if given, else whether ``$SPEECHKIT_OFFLINE`` is set to a true value."""
    if flag is not None:
        return flag
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _verified_cache(root: Path, name: str, full: bool = False) -> Path | None:
    """The cached model directory if it exists and passes its checksums (hashing only the files
    whose records no longer hold, or all if ``full``; records renewed), else None. Call with the
    model's lock held."""
    if not is_cached(root, name):
        return None
    try:
        meta, hashed = verify_packed(root / name, full=full)
    except ZooError as e:
        logger.warning("cached %s is damaged (%s); fetching it again", name, e)
        return None
    if hashed:
        record_verified(root / name, meta)
    return root / name


def _select(entry: ModelEntry, source: str | None) -> list[SourceSpec]:
    specs = [s for s in entry.sources if source is None or s.kind == source]
    if not specs:
        kinds = ", ".join(sorted({s.kind for s in entry.sources}))
        raise ZooError(f"model '{entry.name}' has no '{source}' source (it has: {kinds})")
    return specs


def download(
    name: str,
    source: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    force: bool = False,
    progress: bool = True,
    url: str | None = None,
    registry: dict[str, ModelEntry] | None = None,
    lock_timeout: float = 3600.0,
    revision: str | None = None,
) -> Path:
    """Returns the directory of the packed model ``name``, fetching and converting it if needed.

    source: only try sources of this kind (``pypi``, ``hf``, ``openai``, ``url``).
    url: fetch ``name`` from this packed directory / .tar (path or URL) instead of the registry.
    force: fetch again even if a verified copy is cached (the old copy stays until the new one
    is complete).
    revision: the hub commit (40 hex) for the entry's ``hf`` sources, instead of the registry's.
    """
    offline = offline_mode(offline)
    root = cache_root(cache_dir)
    if url is not None:
        entry = ModelEntry(name=name, sources=[SourceSpec(kind="url", url=url)])
    else:
        entry = get_entry(name, registry)
    specs = _select(entry, source)
    if revision is not None:
        specs = [replace(s, revision=revision) if s.kind == "hf" else s for s in specs]
    if not force and is_current(root, name) and not leftovers(root, name):
        return root / name
    _make_root(root)
    with model_lock(root, name, timeout=lock_timeout):
        tidy(root, name)
        if not force and (cached := _verified_cache(root, name)) is not None:
            return cached  # verified again, or fetched by another process while we waited
        return _fetch_first(entry.name, specs, root, offline, progress)


def verify(name: str, cache_dir: str | Path | None = None, lock_timeout: float = 3600.0) -> Path:
    """Hashes every file of the cached model ``name`` against its meta.json and renews its
    verification records; returns its directory. Raises ``ZooError`` if it is not cached,
    ``ChecksumError`` naming the first bad file (``download(name, force=True)`` replaces it)."""
    root = cache_root(cache_dir)
    if not is_cached(root, name):
        raise ZooError(f"model '{name}' is not in the cache {root}; nothing to verify")
    with model_lock(root, name, timeout=lock_timeout):
        meta, _ = verify_packed(root / name, full=True)
        record_verified(root / name, meta)
    return root / name


def _make_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full_error(root) from e
        raise ZooError(f"cannot create the model cache {root}: {e}") from e


def _fetch_first(name: str, specs: list[SourceSpec], root: Path, offline: bool, progress: bool):
    """Tries the sources in order; installs and returns the first model that verifies."""
    ctx = FetchContext(downloads=root / ".downloads", progress=progress)
    failures: list[tuple[str, str]] = []
    for spec in specs:
        src = make_source(spec)
        if offline and src.needs_network:
            failures.append((src.describe(), "skipped: offline mode needs a cached model"))
            continue
        logger.info("fetching %s from %s", name, src.describe())
        try:
            with staging_dir(root, name) as work:
                packed = src.fetch(work, ctx)
                # a packed model from outside is hashed whatever records came with it; a
                # converter's output was hashed as it was written (its records hold)
                meta, _ = verify_packed(packed, full=spec.converter == "packed")
                meta["zoo"] = _zoo_meta(name, spec, src.describe())
                path = install(packed, root, name, meta)
        except DiskFullError:
            raise
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full_error(root) from e
            failures.append((src.describe(), f"{type(e).__name__}: {e}"))
        except (ZooError, UnsafePathError) as e:
            logger.warning("%s: %s", src.describe(), e)
            failures.append((src.describe(), str(e)))
        else:
            for used in ctx.used:  # raw downloads are only kept to resume a failed run
                shutil.rmtree(used, ignore_errors=True)
            return path
    if all(why.startswith("skipped: offline") for _, why in failures):
        raise OfflineError(
            f"model '{name}' is not in the cache {root} and offline mode is on "
            f"(--offline / {OFFLINE_ENV}=1); download it once with network first"
        )
    raise AllSourcesFailed(name, failures)


def _zoo_meta(name: str, spec: SourceSpec, where: str) -> dict:
    """Where the model came from, with the pins it was checked against (hub commit, the SHA-256
    OpenAI publishes for a checkpoint, wheel or archive hashes)."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta = {"name": name, "source": where, "converter": spec.converter, "fetched": now}
    pins = {"revision": spec.revision, "sha256": spec.sha256, "wheel_sha256": spec.wheel_sha256}
    return meta | {key: value for key, value in pins.items() if value}


def load(name: str, device: str = "cpu", **download_kwargs):
    """A pretrained model: ``name`` is an existing path (a packed directory or a checkpoint
    ``.pt``, loaded as is) or a zoo name (``download(name, **download_kwargs)`` first)."""
    from speechkit.pretrained import load_pretrained

    if Path(name).exists():
        return load_pretrained(name, device=device)
    return load_pretrained(download(name, **download_kwargs), device=device)
