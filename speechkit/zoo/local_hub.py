"""A Hugging Face hub on 127.0.0.1 that serves repositories from local files.

Used by the zoo's tests, by ``tools/espnet_parity.py`` (an OWSM-shaped repo fetched by the zoo
with no network) and for air-gapped mirrors: point ``HF_ENDPOINT`` at ``hub.url`` and the zoo, or
any huggingface_hub client, fetches from it::

    with LocalHub() as hub:
        commit = hub.publish("espnet/owsm_v3.1_ebf_base", Path("repo"))  # or {name: bytes}
        zoo.download("owsm-v3.1-ebf-base", revision=commit)  # with HF_ENDPOINT=hub.url

It answers the endpoints huggingface_hub calls, with the headers it reads:

    HEAD|GET /{repo}/resolve/{revision}/{path}   X-Repo-Commit, ETag (the git blob id; for LFS
                                                 files the SHA-256), X-Linked-Etag, X-Linked-Size;
                                                 a Range request gets 206, past the end 416
    GET /api/models/{repo}/revision/{revision}   {"id", "sha", "siblings": [{"rfilename", "size",
                                                 "blobId", "lfs": {"sha256", "size", ...}}]}

``revision`` is a branch or a commit; every published commit stays servable, so moving a branch
does not change what a pinned download gets. Errors carry the hub's ``X-Error-Code``
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), from which huggingface_hub raises its
typed errors. Tests that need a misbehaving server override ``respond``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Answer", "HubFile", "LocalHub"]

CHUNK = 1 << 20  # bytes per read when streaming a file from disk
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"


def git_blob_id(data_or_path: bytes | Path) -> str:
    """The id git gives a blob: sha1 of ``b"blob <size>\\0"`` + content (as the hub's ETag)."""
    if isinstance(data_or_path, bytes):
        return hashlib.sha1(b"blob %d\0" % len(data_or_path) + data_or_path).hexdigest()
    h = hashlib.sha1(b"blob %d\0" % data_or_path.stat().st_size)
    with open(data_or_path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256(data_or_path: bytes | Path) -> str:
    if isinstance(data_or_path, bytes):
        return hashlib.sha256(data_or_path).hexdigest()
    h = hashlib.sha256()
    with open(data_or_path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class HubFile:
    """One file of a commit: its bytes (``data``) or where they lie (``path``), and its hashes.

    ``lfs`` files are announced as the hub announces Git LFS files: ETag = SHA-256 of the content;
    other files by their git blob id.
    """

    size: int
    blob_id: str
    sha256: str
    lfs: bool
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, content: bytes | Path, lfs: bool) -> HubFile:
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        sha = _sha256(content)
        # an LFS file's blob in git is its pointer file, as on the hub
        blob = git_blob_id(_LFS_POINTER.format(sha=sha, size=size).encode()) if lfs else None
        data, path = (content, None) if isinstance(content, bytes) else (None, content)
        return cls(size, blob or git_blob_id(content), sha, lfs, data, path)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` .. ``end - 1``."""
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def sibling(self, name: str) -> dict:
        """The file's entry in the hub's ``siblings`` listing (``?blobs=true``)."""
        entry = {"rfilename": name, "size": self.size, "blobId": self.blob_id}
        if self.lfs:
            pointer = _LFS_POINTER.format(sha=self.sha256, size=self.size)
            entry["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": len(pointer)}
        return entry


@dataclass
class Answer:
    """An HTTP answer: status, headers, and the body as bytes or a range of a ``HubFile``.

    ``cut_after``: send only this many body bytes, then drop the connection (a failing server).
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: HubFile | None = None
    start: int = 0
    end: int = 0
    cut_after: int | None = None

    def length(self) -> int:
        return self.end - self.start if self.file is not None else len(self.body)


class LocalHub:
    """A local hub server (see the module docstring). ``requests`` records (method, path, Range
    header or None) of every request; ``lfs_threshold``: files of this size or more are LFS."""

    def __init__(self, lfs_threshold: int = 1 << 20):
        self.lfs_threshold = lfs_threshold
        self.branches: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.commits: dict[str, dict[str, dict[str, HubFile]]] = {}  # repo -> commit -> files
        self.requests: list[tuple[str, str, str | None]] = []
        self._httpd: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ content

    def publish(self, repo: str, files: Mapping[str, bytes] | Path, branch: str = "main") -> str:
        """Adds a commit holding ``files`` ({name: bytes}, or every file under a directory) to
        ``repo``, points ``branch`` at it and returns its 40-hex id (a hash of the content, so
        the same files give the same commit)."""
        if isinstance(files, Path):
            listed = {p.relative_to(files).as_posix(): p for p in files.rglob("*") if p.is_file()}
        else:
            listed = dict(files)
        tree = {}
        for name, content in sorted(listed.items()):
            size = len(content) if isinstance(content, bytes) else content.stat().st_size
            tree[name] = HubFile.of(content, lfs=size >= self.lfs_threshold)
        commit = hashlib.sha1(
            json.dumps([repo, [(n, f.blob_id) for n, f in tree.items()]]).encode()
        ).hexdigest()
        self.commits.setdefault(repo, {})[commit] = tree
        self.branches.setdefault(repo, {})[branch] = commit
        return commit

    def resolve(self, repo: str, revision: str) -> str | None:
        """The commit ``revision`` (a branch or a commit of ``repo``) names, or None."""
        if revision in self.branches.get(repo, {}):
            return self.branches[repo][revision]
        return revision if revision in self.commits.get(repo, {}) else None

    # ------------------------------------------------------------------ HTTP

    def respond(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        """The answer to one request (override to make a misbehaving hub)."""
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(path).path.split("/")]
        if parts[1:3] == ["api", "models"] and len(parts) >= 7 and parts[5] == "revision":
            return self._listing(f"{parts[3]}/{parts[4]}", "/".join(parts[6:]))
        if len(parts) >= 6 and parts[3] == "resolve":
            name = "/".join(parts[5:])
            return self._resolve(method, f"{parts[1]}/{parts[2]}", parts[4], name, headers)
        return _error(404, "EntryNotFound", f"no such endpoint: {path}")

    def _listing(self, repo: str, revision: str) -> Answer:
        if repo not in self.commits:
            return _error(404, "RepoNotFound", f"repository {repo} not found")
        commit = self.resolve(repo, revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"revision {revision} not found")
        tree = self.commits[repo][commit]
        body = {"id": repo, "sha": commit, "siblings": [f.sibling(n) for n, f in tree.items()]}
        return Answer(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _resolve(self, method, repo, revision, name, headers) -> Answer:
        if repo not in self.commits:
            return _error(404, "RepoNotFound", f"repository {repo} not found")
        commit = self.resolve(repo, revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"revision {revision} not found")
        hub_file = self.commits[repo][commit].get(name)
        if hub_file is None:
            answer = _error(404, "EntryNotFound", f"{name} not found at {commit}")
            answer.headers["X-Repo-Commit"] = commit
            return answer
        meta = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hub_file.etag}"',
            "Accept-Ranges": "bytes",
        }
        if hub_file.lfs:
            meta |= {"X-Linked-Etag": f'"{hub_file.sha256}"', "X-Linked-Size": str(hub_file.size)}
        start, end = 0, hub_file.size
        status = 200
        rng = headers.get("Range")
        if rng and method == "GET":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= hub_file.size:
                meta["Content-Range"] = f"bytes */{hub_file.size}"
                return Answer(416, meta)
            status = 206
            meta["Content-Range"] = f"bytes {start}-{hub_file.size - 1}/{hub_file.size}"
        return Answer(status, meta, file=hub_file, start=start, end=end)

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test and tool output quiet
                pass

            def _answer(self, method: str) -> None:
                hub.requests.append((method, self.path, self.headers.get("Range")))
                answer = hub.respond(method, self.path, self.headers)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(answer.length()))
                self.end_headers()
                if method == "HEAD":
                    return
                limit = answer.length() if answer.cut_after is None else answer.cut_after
                sent = 0
                while sent < limit:
                    n = min(CHUNK, limit - sent)
                    if answer.file is not None:
                        chunk = answer.file.read(answer.start + sent, answer.start + sent + n)
                    else:
                        chunk = answer.body[sent : sent + n]
                    self.wfile.write(chunk)
                    sent += n
                if answer.cut_after is not None:
                    self.wfile.flush()
                    self.close_connection = True

            def do_GET(self):
                self._answer("GET")

            def do_HEAD(self):
                self._answer("HEAD")

        return Handler

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("LocalHub is not started (use it as a context manager)")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> LocalHub:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"error": message}).encode()
    return Answer(status, {"X-Error-Code": code, "Content-Type": "application/json"}, body)
