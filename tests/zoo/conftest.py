"""Shared test fixtures for the zoo: a local HTTP file server, a local Hugging Face hub (as
``HF_ENDPOINT``), fake converters, packed dirs."""

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

from speechkit.zoo.local_hub import LocalHub

PACKED = ("config.yaml", "model.pt", "tokenizer.model", "tokenizer.json")


class FileServer:
    """Serves ``files`` ({url path: bytes}) on 127.0.0.1 with HTTP Range support.

    ``drop_once``: paths whose first response promises the whole body but sends only half, then
    closes the connection; ``drop_always``: every response does so. ``ignore_range``: answer 200
    with the full body even to a Range request. ``etags``: send an ETag (a hash of the body) and
    honour ``If-Range``, unless ``ignore_if_range`` (a server that resumes whatever it now has).
    ``requests`` records (path, Range header or None) of every request.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_once: set[str] = set()
        self.drop_always: set[str] = set()
        self.ignore_range = False
        self.etags = False
        self.ignore_if_range = False
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
                etag = f'"{sha256(body)[:16]}"'
                if_range = self.headers.get("If-Range")
                if server.etags and if_range and if_range != etag and not server.ignore_if_range:
                    rng = None  # the version asked for is gone: send the whole new one
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
                if server.etags:
                    self.send_header("ETag", etag)
                self.end_headers()
                if self.path in server.drop_once | server.drop_always:
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
def hub(monkeypatch):
    """A ``LocalHub`` on 127.0.0.1, set as ``HF_ENDPOINT``; files of 1 kB or more are LFS."""
    with LocalHub(lfs_threshold=1024) as local:
        monkeypatch.setenv("HF_ENDPOINT", local.url)
        yield local


@pytest.fixture
def fast_retries(monkeypatch):
    """huggingface_hub resumes a dropped transfer after 1 s, from the last full read (10 MB):
    make both small."""
    monkeypatch.setattr("huggingface_hub.file_download.time.sleep", lambda s: None)
    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 1024)


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
    """A minimal packed-layout directory with a correct meta.json: dummy contents, except
    model.pt, which torch's safe loader reads (the zoo checks that before installing)."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    for name in PACKED:
        (directory / name).write_bytes(name.encode() + b":" + payload)
    torch.save({"payload": torch.tensor(list(payload), dtype=torch.uint8)}, directory / "model.pt")
    sums = {name: sha256((directory / name).read_bytes()) for name in PACKED}
    meta = {"speechkit_version": "test", "source": "test", "sha256": sums}
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


def tiny_packed_model(directory: Path):
    """A real packed S2T model (16 mel bins, one layer each side); returns its tokenizer."""
    from speechkit.data import FeatureConfig
    from speechkit.models import build_model
    from speechkit.models.s2t import S2TConfig
    from speechkit.pretrained import save_pretrained
    from speechkit.text.sentencepiece import SentencePieceTokenizer, TokenizerConfig

    texts = ["where is the station", "two coffees please", "good morning"] * 5
    tok = SentencePieceTokenizer.train(
        texts, None, TokenizerConfig(vocab_size=30), ["eng"], ["asr"]
    )
    cfg = S2TConfig(
        n_mels=16, vocab_size=tok.vocab_size, d_model=32, n_heads=2, encoder_type="transformer",
        encoder_layers=1, encoder_ffn=48, cgmlp_units=48, decoder_layers=1, decoder_ffn=48,
        max_target_positions=32,
    )  # fmt: skip
    save_pretrained(build_model(cfg), tok, FeatureConfig(n_mels=16), directory)
    return tok


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
