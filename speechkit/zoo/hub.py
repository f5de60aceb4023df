"""Files of a Hugging Face hub repository at one pinned commit, fetched with huggingface_hub and
verified before they are used.

    repo = HubRepo("openai/whisper-base", "e37978b90ca9030d5170a5c07aadb050351a65bb")
    repo.files                                   # {name: HubBlob}: the commit's listing, checked
    repo.download("config.json", directory)      # -> directory / "config.json", verified

The endpoint is ``$HF_ENDPOINT`` (read at each call, as tests and mirrors set it), else
huggingface.co.

Trust starts at the commit. Its listing (``api/models/<repo>/revision/<commit>``, through
``HfApi.model_info(files_metadata=True)``) must come back for that commit, and gives each file's
size and hash: the SHA-256 of a Git LFS file, the git blob id of any other. Every listed name must
be a plain relative path, or the whole repository is refused. A file is then fetched from
``resolve/<commit>/<name>``: huggingface_hub's HEAD (``get_hf_file_metadata``) must agree with
the listing (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``, ``X-Linked-Size``), and its
``http_get`` streams the body (resuming a dropped connection with a Range request) into a
temporary file that is renamed into place only if it has the listed size and hash. A branch moved
mid-download, a server that splices two versions on resume, a truncated or altered body: each ends
in ``ChecksumError``, and nothing is left behind but files that passed.

Why not ``hf_hub_download``: huggingface_hub 2.4.0 uses the server's ETag header as a file name
in its cache (``blobs/<etag>``) without checking it, so an endpoint that answers
``ETag: "../../x"`` makes it write outside the cache. Here the only names written are listed
names, checked to stay inside the destination; the server's headers are compared, never used as
paths. Locking is the zoo's per-model lock; offline mode is the zoo's (and ``HF_HUB_OFFLINE``,
which huggingface_hub's client enforces).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from speechkit.integrity import UnsafePathError, relative_parts, safe_join, sha256_file
from speechkit.zoo.errors import (
    ChecksumError,
    HTTPStatusError,
    NetworkError,
    OfflineError,
    SourceError,
)
from speechkit.zoo.transfer import disk_full_error

__all__ = ["HF_DEFAULT_ENDPOINT", "HubBlob", "HubRepo", "MissingHubFile", "hf_endpoint"]

logger = logging.getLogger(__name__)

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
_HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "git-sha1": re.compile(r"^[0-9a-f]{40}$")}
CHUNK = 1 << 20


def hf_endpoint() -> str:
    """The hub's base URL: ``$HF_ENDPOINT`` (as huggingface_hub uses it), else huggingface.co."""
    return os.environ.get("HF_ENDPOINT", HF_DEFAULT_ENDPOINT).rstrip("/")


class MissingHubFile(SourceError):
    """The pinned commit has no file of that name (the caller may treat it as optional)."""


@dataclass(frozen=True)
class HubBlob:
    """A listed file: its size in bytes and its hash (``algorithm``: sha256 for Git LFS files,
    git-sha1, the blob id, for others)."""

    size: int
    algorithm: str
    digest: str

    def matches(self, path: Path) -> bool:
        """Whether ``path`` has this size and hash (reads the whole file)."""
        if path.stat().st_size != self.size:
            return False
        if self.algorithm == "sha256":
            return sha256_file(path) == self.digest
        h = hashlib.sha1(b"blob %d\0" % self.size)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        return h.hexdigest() == self.digest


class HubRepo:
    """One repository at one commit (a 40-hex id; branches are not accepted)."""

    def __init__(self, repo: str, commit: str, progress: bool = True, timeout: float = 30.0):
        self.repo, self.commit = repo, commit
        self.endpoint = hf_endpoint()
        self.progress, self.timeout = progress, timeout

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit}"

    @functools.cached_property
    def files(self) -> dict[str, HubBlob]:
        """The commit's listing, {name: HubBlob}; refused whole if any entry is malformed."""
        from huggingface_hub import HfApi

        with self._errors("the file listing"):
            info = HfApi(endpoint=self.endpoint).model_info(
                self.repo, revision=self.commit, files_metadata=True, timeout=self.timeout
            )
        if info.sha != self.commit:
            raise ChecksumError(
                f"{self}: the hub answered for commit {info.sha!r} instead; refusing a listing "
                "that is not the pinned one"
            )
        listing = {}
        for sibling in info.siblings or []:
            name = sibling.rfilename
            try:
                relative_parts(name, f"file name in the listing of {self}")
            except UnsafePathError as e:
                raise SourceError(str(e)) from e
            lfs = sibling.lfs
            blob = HubBlob(
                size=lfs.size if lfs else sibling.size,
                algorithm="sha256" if lfs else "git-sha1",
                digest=str(lfs.sha256 if lfs else sibling.blob_id).lower(),
            )
            if not isinstance(blob.size, int) or not _HEX[blob.algorithm].match(blob.digest):
                raise SourceError(f"{self}: malformed listing entry for {name!r}: {blob}")
            listing[name] = blob
        return listing

    def download(self, name: str, directory: Path) -> Path:
        """Fetches ``name`` to ``directory / name`` (kept if an earlier run already fetched and
        verified it); raises ``MissingHubFile`` if the commit has no such file."""
        try:
            dest = safe_join(directory, name, f"file name for {self}")
        except UnsafePathError as e:
            raise SourceError(str(e)) from e
        blob = self.files.get(name)
        if blob is None:
            raise MissingHubFile(f"{self} has no file {name!r}")
        if dest.is_file() and blob.matches(dest):
            return dest
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.repo, name, revision=self.commit, endpoint=self.endpoint)
        with self._errors(name):
            meta = get_hf_file_metadata(url, timeout=self.timeout)
        self._agree(name, blob, meta)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.incomplete")
        try:
            with self._errors(name), open(tmp, "wb") as f:
                self._get(meta.location, url, f, blob.size, name)
            if not blob.matches(tmp):
                raise ChecksumError(
                    f"{self}/{name}: the bytes received do not hash to the listed "
                    f"{blob.algorithm} {blob.digest}; the server sent another version or a "
                    "corrupt file"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _agree(self, name: str, blob: HubBlob, meta) -> None:
        """The HEAD answer must describe the listed file at the pinned commit."""
        said = {"commit": meta.commit_hash, "ETag": meta.etag, "size": meta.size}
        want = {"commit": self.commit, "ETag": blob.digest, "size": blob.size}
        if meta.size is None:  # not every server sends it; http_get checks the length anyway
            del said["size"], want["size"]
        if said != want:
            diff = ", ".join(
                f"{k} {said[k]!r} (listed: {want[k]!r})" for k in want if said[k] != want[k]
            )
            raise ChecksumError(
                f"{self}/{name}: the hub's answer disagrees with the listing: {diff}"
            )

    def _get(self, location: str, url: str, f, size: int, name: str) -> None:
        from huggingface_hub.file_download import http_get
        from huggingface_hub.utils import build_hf_headers

        # the hub's token goes to the hub only, not to the CDN it may redirect to
        same_origin = urllib.parse.urlsplit(location)[:2] == urllib.parse.urlsplit(url)[:2]
        bar = None if self.progress else functools.partial(tqdm, disable=True)
        http_get(
            location,
            f,
            headers=build_hf_headers() if same_origin else None,
            expected_size=size,
            displayed_filename=name,
            tqdm_class=bar,
        )

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """huggingface_hub's and httpx's errors, as the zoo's (naming repo, commit and file)."""
        import httpx2
        from huggingface_hub import errors as hf

        where = f"{self} ({what})"
        try:
            yield
        except hf.OfflineModeIsEnabled as e:
            raise OfflineError(f"{where}: HF_HUB_OFFLINE is set: {e}") from e
        except hf.RevisionNotFoundError as e:
            raise SourceError(f"{where}: the hub at {self.endpoint} has no such commit") from e
        except hf.RepositoryNotFoundError as e:
            raise SourceError(f"{where}: no such repository at {self.endpoint}") from e
        except hf.RemoteEntryNotFoundError as e:
            raise MissingHubFile(f"{where}: no such file at {self.endpoint}") from e
        except hf.HfHubHTTPError as e:
            code = e.response.status_code if e.response is not None else 0
            raise HTTPStatusError(f"{where}: HTTP {code} from {self.endpoint}", code) from e
        except hf.FileMetadataError as e:
            raise SourceError(f"{where}: {self.endpoint} does not answer as a hub: {e}") from e
        except (httpx2.TransportError, ConnectionError, TimeoutError) as e:
            host = urllib.parse.urlsplit(self.endpoint).netloc
            raise NetworkError(
                f"{where}: cannot reach {host} ({e}); check the network or HF_ENDPOINT, or try "
                "--offline if the model is cached"
            ) from e
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise disk_full_error(Path(what)) from e
            if "Consistency check failed" in str(e):  # http_get: fewer bytes than the listing
                raise ChecksumError(f"{where}: truncated download ({e})".splitlines()[0]) from e
            raise
