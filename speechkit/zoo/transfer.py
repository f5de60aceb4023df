"""Downloading one file over HTTP(S): progress bar, resume, SHA-256 check, clear errors.

``fetch_url(url, dest, sha256=...)`` writes ``dest`` atomically: bytes go to ``dest.part``
first, and the file is renamed to ``dest`` only once it is complete (and matches ``sha256``,
when given). An interrupted download leaves ``dest.part`` behind, with the server's ETag for it
in ``dest.part.etag``; the next call resumes it with an HTTP ``Range`` request, but only where the
result can be checked: against ``sha256``, or because the server proves with ``If-Range`` that it
still serves the same version (a resource that changed, or a server that ignores ``Range``,
answers 200 and the file starts over). Resuming without either could splice two versions of a
file into one, so the download then starts from zero. Within one call, a dropped connection is
resumed up to ``retries`` times.

HTTP 416 (range not satisfiable) to a resume means the ``.part`` is as long as the file, or that
the file changed: the ``.part`` is kept only if the server's ``Content-Range`` gives exactly its
length and ``sha256`` confirms it; otherwise it is discarded and the file fetched again.

Failures raise ``speechkit.zoo.errors`` types: ``NetworkError`` (server unreachable),
``ChecksumError`` (the ``.part`` is deleted, so the next try starts clean), ``DiskFullError``
(ENOSPC), ``HTTPStatusError`` (HTTP errors such as 404).
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from speechkit.integrity import sha256_file
from speechkit.zoo.errors import ChecksumError, DiskFullError, HTTPStatusError, NetworkError

__all__ = ["fetch_url", "sha256_file", "check_sha256", "disk_full_error"]

logger = logging.getLogger(__name__)

CHUNK = 1 << 16  # bytes per read
MAX_RESTARTS = 2  # a server that changes the file under us more often is given up on
USER_AGENT = "speechkit-zoo"
_DROPPED = (http.client.IncompleteRead, ConnectionError, TimeoutError)


class _Incomplete(Exception):
    """The connection ended before the whole body arrived (resumable)."""


class _Restart(Exception):
    """The ``.part`` cannot be continued safely; start the file from zero."""


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


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _open(url: str, offset: int, etag: str | None, timeout: float):
    """Opens ``url``, asking for bytes ``offset``..end of the version ``etag`` when resuming.

    Returns the response, or None for a 416 answer to a resume (with the total length the
    server gave in ``Content-Range``, if any, as the second element).
    """
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
        if etag:
            req.add_header("If-Range", etag)
    try:
        return urllib.request.urlopen(req, timeout=timeout), None
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            total = (e.headers.get("Content-Range") or "").rpartition("/")[2]
            return None, int(total) if total.isdigit() else None
        raise HTTPStatusError(f"{url}: HTTP {e.code} {e.reason}", e.code) from e
    except urllib.error.URLError as e:
        raise NetworkError(
            f"cannot reach {_host(url)} ({e.reason}); check the network, or try --offline if "
            "the model is cached"
        ) from e
    except (TimeoutError, ConnectionError) as e:
        raise NetworkError(f"cannot reach {_host(url)} ({e}); try --offline if cached") from e


def _resumed(resp, offset: int, etag: str | None) -> bool:
    """Whether ``resp`` continues our ``.part`` (206 for the same version); raises ``_Restart``
    for a 206 that belongs to another version of the file."""
    if not offset or getattr(resp, "status", 200) != 206:
        return False
    got = resp.headers.get("ETag")
    if etag and got and got != etag:
        resp.close()
        raise _Restart(f"the server now sends another version (ETag {got}, was {etag})")
    start = (resp.headers.get("Content-Range") or "").removeprefix("bytes ").partition("-")[0]
    if start != str(offset):
        resp.close()
        raise _Restart(f"the server resumed at {start or '?'} instead of byte {offset}")
    return True


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


def _discard(part: Path, etag_file: Path) -> None:
    part.unlink(missing_ok=True)
    etag_file.unlink(missing_ok=True)


def _transfer(url, part, etag_file, offset, etag, sha256, timeout, progress) -> None:
    """One request that continues ``part`` at ``offset`` (or starts it again) to its end."""
    resp, total = _open(url, offset, etag, timeout)
    if resp is None:  # 416: the .part is complete, or belongs to another version
        if total == offset and sha256:
            return  # the checksum decides
        raise _Restart(f"HTTP 416 for byte {offset} of a {total or '?'}-byte file")
    resumed = _resumed(resp, offset, etag)
    if not resumed:
        _discard(part, etag_file)
        if new_etag := resp.headers.get("ETag"):
            etag_file.write_text(new_etag)
    elif offset:
        logger.info("resuming %s at byte %d", url, offset)
    _copy_body(resp, part, offset, resumed, part.name.removesuffix(".part"), progress)


def fetch_url(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
) -> Path:
    """Downloads ``url`` to ``dest`` (resuming ``dest.part`` where safe), checks ``sha256``.

    An existing ``dest`` that matches ``sha256`` is returned without network access.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256 and sha256_file(dest) == sha256.lower():
        return dest
    part = dest.with_name(dest.name + ".part")
    etag_file = dest.with_name(dest.name + ".part.etag")
    etag = etag_file.read_text().strip() if etag_file.is_file() else None
    drops = restarts = 0
    while True:
        if part.is_file() and not (sha256 or etag):
            logger.info("%s: %s cannot be checked, so it is not resumed", url, part.name)
            _discard(part, etag_file)
        offset = part.stat().st_size if part.is_file() else 0
        try:
            _transfer(url, part, etag_file, offset, etag, sha256, timeout, progress)
            break
        except _Restart as e:
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise NetworkError(f"{url}: {e}, {restarts} times; try again later") from None
            logger.warning("%s: %s; downloading it again from the start", url, e)
            _discard(part, etag_file)
        except _Incomplete as e:
            drops += 1
            if drops > retries:
                raise NetworkError(
                    f"{url}: connection dropped ({e}) {drops} times; run the same "
                    f"command again to resume from {part}"
                ) from None
            logger.warning("%s: connection dropped (%s); resuming", url, e)
        etag = etag_file.read_text().strip() if etag_file.is_file() else None
    if sha256:
        try:
            check_sha256(part, sha256, url)
        except ChecksumError:
            _discard(part, etag_file)
            raise
    os.replace(part, dest)
    etag_file.unlink(missing_ok=True)
    return dest
