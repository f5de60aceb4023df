"""Downloading one file over HTTP(S): progress bar, resume, SHA-256 check, clear errors.

``fetch_url(url, dest, sha256=...)`` writes ``dest`` atomically: bytes go to ``dest.part``
first, and the file is renamed to ``dest`` only once it is complete (and matches ``sha256``,
when given). An interrupted download leaves ``dest.part`` behind; the next call resumes it with
an HTTP ``Range`` request (servers that ignore ``Range`` answer 200 and the file starts over).
Within one call, a dropped connection is resumed up to ``retries`` times.

Failures raise ``speechkit.zoo.errors`` types: ``NetworkError`` (server unreachable),
``ChecksumError`` (the ``.part`` is deleted, so the next try starts clean), ``DiskFullError``
(ENOSPC), ``HTTPStatusError`` (HTTP errors such as 404).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from speechkit.zoo.errors import ChecksumError, DiskFullError, HTTPStatusError, NetworkError

__all__ = ["fetch_url", "sha256_file", "check_sha256", "disk_full_error"]

logger = logging.getLogger(__name__)

CHUNK = 1 << 16  # bytes per read
USER_AGENT = "speechkit-zoo"
_DROPPED = (http.client.IncompleteRead, ConnectionError, TimeoutError)


class _Incomplete(Exception):
    """The connection ended before the whole body arrived (resumable)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(path: Path, expected: str, what: str) -> None:
    """Raises ``ChecksumError`` naming ``what`` if ``path`` does not hash to ``expected``."""
    got = sha256_file(path)
    if got != expected.lower():
        raise ChecksumError(
            f"{what}: sha256 mismatch (expected {expected}, got {got}); the file is corrupt "
            "or the server sent something else"
        )


def disk_full_error(path: Path) -> DiskFullError:
    return DiskFullError(
        f"no space left on device while writing {path}; free some space or move the model "
        "cache with --cache-dir / SPEECHKIT_CACHE"
    )


def _open(url: str, offset: int, timeout: float):
    """Opens ``url`` asking for bytes ``offset``..end; returns (response, resumed?)."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # our .part already holds the whole file
            return None, True
        raise HTTPStatusError(f"{url}: HTTP {e.code} {e.reason}", e.code) from e
    except urllib.error.URLError as e:
        host = urllib.parse.urlsplit(url).netloc or url
        raise NetworkError(
            f"cannot reach {host} ({e.reason}); check the network, or try --offline if the "
            "model is cached"
        ) from e
    except (TimeoutError, ConnectionError) as e:
        host = urllib.parse.urlsplit(url).netloc or url
        raise NetworkError(f"cannot reach {host} ({e}); try --offline if cached") from e
    return resp, getattr(resp, "status", 200) == 206


def _copy_body(resp, part: Path, offset: int, resumed: bool, desc: str, progress: bool) -> None:
    """Streams the response body into ``part`` (appending when the server honoured Range)."""
    if not resumed:
        offset = 0
    length = resp.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    received = 0
    bar = tqdm(
        total=total, initial=offset, unit="B", unit_scale=True, desc=desc, disable=not progress
    )
    try:
        with open(part, "ab" if resumed else "wb") as f, bar:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except _DROPPED as e:
                    raise _Incomplete(str(e) or type(e).__name__) from e
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full_error(part) from e
        raise
    finally:
        resp.close()
    if length is not None and received < int(length):
        raise _Incomplete(f"got {received} of {length} bytes")


def fetch_url(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
) -> Path:
    """Downloads ``url`` to ``dest`` (resuming ``dest.part``), checks ``sha256`` if given.

    An existing ``dest`` that matches ``sha256`` is returned without network access.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256 and sha256_file(dest) == sha256.lower():
        return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.is_file() else 0
        resp, resumed = _open(url, offset, timeout)
        if resp is None:
            break
        if offset:
            logger.info("resuming %s at byte %d (%s)", url, offset, "ok" if resumed else "restart")
        try:
            _copy_body(resp, part, offset, resumed, dest.name, progress)
            break
        except _Incomplete as e:
            if attempt == retries:
                raise NetworkError(
                    f"{url}: connection dropped ({e}) {retries + 1} times; run the same "
                    f"command again to resume from {part}"
                ) from None
            logger.warning("%s: connection dropped (%s); resuming", url, e)
    if sha256:
        try:
            check_sha256(part, sha256, url)
        except ChecksumError:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    return dest
