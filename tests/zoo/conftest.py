"""Shared test fixtures for the zoo: a local HTTP file server, fake converters, packed dirs."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PACKED = ("config.yaml", "model.pt", "tokenizer.model", "tokenizer.json")


class FileServer:
    """Serves ``files`` ({url path: bytes}) on 127.0.0.1 with HTTP Range support.

    ``drop_once``: paths whose first response promises the whole body but sends only half, then
    closes the connection. ``ignore_range``: answer 200 with the full body even to a Range request.
    ``requests`` records (path, Range header or None) of every request.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_once: set[str] = set()
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path in server.drop_once:
                    server.drop_once.discard(self.path)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def paths_requested(self) -> list[str]:
        return [p for p, _ in self.requests]


@pytest.fixture
def server():
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_packed(directory: Path, payload: bytes = b"weights") -> Path:
    """A minimal packed-layout directory (dummy contents) with a correct meta.json."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in PACKED:
        (directory / name).write_bytes(name.encode() + b":" + payload)
    sums = {name: sha256((directory / name).read_bytes()) for name in PACKED}
    meta = {"speechkit_version": "test", "source": "test", "sha256": sums}
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


class FakeConverters:
    """Stand-ins for speechkit.convert.{ct2,hf,openai}: each writes a packed directory and
    records (kind, what it read, keyword arguments), where what it read is the input file's
    bytes or {file name: bytes} of the input directory, and Path arguments are read too (the
    zoo deletes raw downloads after installing)."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[tuple[str, bytes | dict, dict]] = []
        self.delay = delay

    def _converter(self, kind: str):
        def convert(inputs, out_dir, **kwargs):
            inputs, out_dir = Path(inputs), Path(out_dir)
            if inputs.is_dir():
                seen = {p.name: p.read_bytes() for p in sorted(inputs.iterdir()) if p.is_file()}
            else:
                seen = inputs.read_bytes()
            args = {k: v.read_bytes() if isinstance(v, Path) else v for k, v in kwargs.items()}
            self.calls.append((kind, seen, args))
            time.sleep(self.delay)
            return write_packed(out_dir, sha256(repr(seen).encode()).encode())

        return convert

    def install(self, monkeypatch) -> FakeConverters:
        for kind in ("ct2", "hf", "openai"):
            module = types.ModuleType(f"speechkit.convert.{kind}")
            setattr(module, f"convert_{kind}", self._converter(kind))
            if kind == "ct2":
                module.join_parts = _join_parts
            monkeypatch.setitem(sys.modules, f"speechkit.convert.{kind}", module)
        return self


def _join_parts(parts, out):
    with open(out, "wb") as f:
        for part in parts:
            f.write(Path(part).read_bytes())


@pytest.fixture
def converters(monkeypatch):
    return FakeConverters().install(monkeypatch)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test touches the user's cache or registry, or inherits offline mode / hub endpoint."""
    for var in ("SPEECHKIT_OFFLINE", "SPEECHKIT_ZOO_REGISTRY", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SPEECHKIT_CACHE", str(tmp_path / "default-cache"))
