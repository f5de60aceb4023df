"""The downloader (resume, checksums, errors) and zoo.download (sources, cache, lock, offline)."""

from __future__ import annotations

import errno
import io
import json
import tarfile
import threading
import time

import pytest
from conftest import PACKED, FakeConverters, sha256, tiny_packed_model, write_packed

from speechkit import zoo
from speechkit.zoo import transfer
from speechkit.zoo.cache import model_lock
from speechkit.zoo.errors import (
    AllSourcesFailed,
    ChecksumError,
    DiskFullError,
    HTTPStatusError,
    LockTimeoutError,
    NetworkError,
    OfflineError,
    UnknownModelError,
)
from speechkit.zoo.registry import ModelEntry, SourceSpec

BLOB = bytes(range(256)) * 1000  # 256 kB, not a multiple of the read size
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def entry(name: str, *sources: dict) -> dict[str, ModelEntry]:
    return {name: ModelEntry(name=name, sources=[SourceSpec(**s) for s in sources])}


def openai_source(server, data: bytes, digest: str | None = None) -> dict:
    server.files["/models/abc/tiny.pt"] = data
    return {
        "kind": "openai",
        "url": f"{server.url}/models/abc/tiny.pt",
        "sha256": digest or sha256(data),
    }


def cache_is_clean(root, name: str) -> bool:
    """No model directory, nothing left in staging, no partial download."""
    staged = list((root / ".staging").iterdir()) if (root / ".staging").exists() else []
    parts = list(root.rglob("*.part"))
    return not (root / name).exists() and not staged and not parts


# ---------------------------------------------------------------- transfer.fetch_url


def test_fetch_url_downloads_and_checks_sha256(server, tmp_path):
    server.files["/f.bin"] = BLOB
    out = transfer.fetch_url(
        f"{server.url}/f.bin", tmp_path / "f.bin", sha256(BLOB), progress=False
    )
    assert out.read_bytes() == BLOB
    assert not (tmp_path / "f.bin.part").exists()
    # a verified file on disk is not fetched again
    transfer.fetch_url(f"{server.url}/f.bin", out, sha256(BLOB), progress=False)
    assert server.paths_requested() == ["/f.bin"]


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    server.files["/f.bin"] = BLOB
    server.drop_once.add("/f.bin")
    out = transfer.fetch_url(
        f"{server.url}/f.bin", tmp_path / "f.bin", sha256(BLOB), progress=False
    )
    assert out.read_bytes() == BLOB
    first, second = server.requests
    assert first == ("/f.bin", None)
    offset = int(second[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset < len(BLOB)


def test_interrupted_run_leaves_part_and_next_run_resumes(server, tmp_path):
    server.files["/f.bin"] = BLOB
    server.drop_once.add("/f.bin")
    dest = tmp_path / "f.bin"
    with pytest.raises(NetworkError, match="connection dropped"):
        transfer.fetch_url(f"{server.url}/f.bin", dest, sha256(BLOB), progress=False, retries=0)
    part = tmp_path / "f.bin.part"
    assert 0 < part.stat().st_size < len(BLOB) and not dest.exists()
    transfer.fetch_url(f"{server.url}/f.bin", dest, sha256(BLOB), progress=False, retries=0)
    assert dest.read_bytes() == BLOB
    assert server.requests[-1][1] == f"bytes={len(BLOB) // 2}-"


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/f.bin"] = BLOB
    server.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from another file")
    out = transfer.fetch_url(
        f"{server.url}/f.bin", tmp_path / "f.bin", sha256(BLOB), progress=False
    )
    assert out.read_bytes() == BLOB


def test_a_part_nothing_can_check_is_not_resumed(server, tmp_path):
    server.files["/f.bin"] = BLOB
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes of something else")
    out = transfer.fetch_url(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert out.read_bytes() == BLOB and server.requests == [("/f.bin", None)]


@pytest.mark.parametrize("ignore_if_range", [False, True], ids=["if-range", "ignores-if-range"])
def test_a_file_changed_since_the_partial_download_is_fetched_whole(
    server, tmp_path, ignore_if_range
):
    """No digest pins it, but the ETag kept with the .part shows the change: the new version is
    fetched whole (If-Range; or, from a server that ignores it, after seeing the new ETag)."""
    url, dest = f"{server.url}/f.bin", tmp_path / "f.bin"
    server.files["/f.bin"], server.etags = BLOB, True
    server.drop_once.add("/f.bin")
    with pytest.raises(NetworkError, match="connection dropped"):
        transfer.fetch_url(url, dest, progress=False, retries=0)
    assert (tmp_path / "f.bin.part.etag").read_text() == f'"{sha256(BLOB)[:16]}"'
    server.files["/f.bin"], server.ignore_if_range = BLOB[::-1], ignore_if_range
    assert transfer.fetch_url(url, dest, progress=False, retries=0).read_bytes() == BLOB[::-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_416_for_a_complete_part_is_checked_not_trusted(server, tmp_path):
    server.files["/f.bin"] = BLOB
    (tmp_path / "f.bin.part").write_bytes(BLOB)
    out = transfer.fetch_url(
        f"{server.url}/f.bin", tmp_path / "f.bin", sha256(BLOB), progress=False
    )
    assert out.read_bytes() == BLOB and server.requests == [("/f.bin", f"bytes={len(BLOB)}-")]


def test_checksum_mismatch_deletes_partial_file(server, tmp_path):
    server.files["/f.bin"] = BLOB
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        transfer.fetch_url(f"{server.url}/f.bin", tmp_path / "f.bin", "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_and_missing_file(server, closed_port_url, tmp_path):
    with pytest.raises(NetworkError, match="cannot reach 127.0.0.1.*--offline"):
        transfer.fetch_url(f"{closed_port_url}/f.bin", tmp_path / "f.bin", progress=False)
    with pytest.raises(HTTPStatusError, match="404") as info:
        transfer.fetch_url(f"{server.url}/nothing", tmp_path / "g.bin", progress=False)
    assert info.value.code == 404


# ---------------------------------------------------------------- zoo.download


def test_download_converts_installs_and_serves_offline(server, converters, tmp_path):
    reg = entry("m", openai_source(server, BLOB))
    path = zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False)
    assert path == tmp_path / "m"
    [(kind, checkpoint, kwargs)] = converters.calls
    assert kind == "openai" and checkpoint == BLOB and kwargs == {"tokenizer_json": None}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["zoo"]["source"].startswith("openai:") and meta["zoo"]["name"] == "m"
    assert not list((tmp_path / ".staging").iterdir())
    assert not list((tmp_path / ".downloads").iterdir())  # raw download dropped after install
    # cached and verified: no request, even offline, even with the server gone
    n = len(server.requests)
    server.httpd.shutdown()
    assert zoo.download("m", cache_dir=tmp_path, registry=reg, offline=True) == path
    assert len(server.requests) == n and len(converters.calls) == 1


def test_checksum_mismatch_keeps_the_cache_clean(server, converters, tmp_path):
    reg = entry("m", openai_source(server, BLOB, digest="1" * 64))
    with pytest.raises(AllSourcesFailed, match="sha256 mismatch"):
        zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False)
    assert cache_is_clean(tmp_path, "m") and converters.calls == []


def test_sources_are_tried_in_order_and_all_failures_reported(
    server, closed_port_url, converters, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url)
    bad_url = {"kind": "url", "url": str(tmp_path / "no-such-model")}
    hf = {"kind": "hf", "repo": "openai/whisper-tiny.en", "revision": COMMIT}
    reg = entry("m", bad_url, hf, openai_source(server, BLOB))
    zoo.download("m", cache_dir=tmp_path / "c", registry=reg, progress=False)
    assert [c[0] for c in converters.calls] == ["openai"]  # the third source won

    reg = entry("n", bad_url, hf)
    with pytest.raises(AllSourcesFailed) as info:
        zoo.download("n", cache_dir=tmp_path / "c", registry=reg, progress=False)
    message = str(info.value)
    assert "url:" in message and "no such directory" in message
    assert f"hf:openai/whisper-tiny.en@{COMMIT}" in message and "cannot reach 127.0.0.1" in message


def test_offline_without_cache_is_a_clear_error(server, converters, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHKIT_OFFLINE", "1")
    reg = entry("m", openai_source(server, BLOB))
    with pytest.raises(OfflineError, match="not in the cache .* offline mode is on"):
        zoo.download("m", cache_dir=tmp_path, registry=reg)
    assert server.requests == []
    # a local packed directory needs no network, so offline mode may still use it
    local = write_packed(tmp_path / "local")
    path = zoo.download("local-model", url=str(local), cache_dir=tmp_path / "c")
    assert (path / "model.pt").read_bytes() == (local / "model.pt").read_bytes()


def test_unknown_name_suggests_close_names(tmp_path):
    with pytest.raises(UnknownModelError, match="did you mean whisper-tiny.en"):
        zoo.download("whisper-tiny", cache_dir=tmp_path)


def test_disk_full_aborts_and_leaves_no_half_written_model(
    server, converters, tmp_path, monkeypatch
):
    real_open = open

    class FullDisk(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.f.close()

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if "w" in mode or "a" in mode else f

    monkeypatch.setattr(transfer, "open", full_open, raising=False)
    reg = entry("m", openai_source(server, BLOB), {"kind": "url", "url": str(tmp_path / "x")})
    with pytest.raises(DiskFullError, match="no space left .* SPEECHKIT_CACHE"):
        zoo.download("m", cache_dir=tmp_path / "c", registry=reg, progress=False)
    assert not (tmp_path / "c" / "m").exists()
    assert not list((tmp_path / "c" / ".staging").iterdir())


def test_concurrent_downloads_of_one_model_fetch_once(server, tmp_path, monkeypatch):
    slow = FakeConverters(delay=0.3).install(monkeypatch)
    reg = entry("m", openai_source(server, BLOB))
    results, errors = [], []

    def worker():
        try:
            results.append(zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False))
        except Exception as e:  # surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [tmp_path / "m"] * 2
    assert len(slow.calls) == 1


def test_lock_times_out_while_held(tmp_path):
    with model_lock(tmp_path, "m"):
        start = time.monotonic()
        with pytest.raises(LockTimeoutError, match="another process"):
            with model_lock(tmp_path, "m", timeout=0.2):
                pass
        assert time.monotonic() - start >= 0.2
    with model_lock(tmp_path, "m", timeout=0.2):  # free again once released
        pass


def test_damaged_cache_is_fetched_again_and_force_replaces(server, converters, tmp_path):
    reg = entry("m", openai_source(server, BLOB))
    path = zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False)
    (path / "model.pt").write_bytes(b"bit rot")
    zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False)
    assert len(converters.calls) == 2
    zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False, force=True)
    assert len(converters.calls) == 3
    zoo.cache.verify_packed(path)


# ---------------------------------------------------------------- sources


def test_hf_source_fetches_repo_files_at_the_pinned_commit(hub, converters, tmp_path):
    repo_files = {"config.json": b"{}", "tokenizer.json": b"{}", "model.safetensors": BLOB}
    repo_files["vocab.json"] = b'{"a": 1}'
    commit = hub.publish("openai/whisper-tiny.en", repo_files | {"README.md": b"not needed"})
    hub.publish("openai/whisper-tiny.en", {"config.json": b"newer"})  # main moves on
    reg = entry("m", {"kind": "hf", "repo": "openai/whisper-tiny.en", "revision": commit})
    path = zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False)
    [(kind, model_files, _)] = converters.calls
    assert kind == "hf" and model_files == repo_files  # the pinned files, no README
    fetched = {p.rsplit("/", 1)[1] for m, p, _ in hub.requests if m == "GET" and "resolve" in p}
    assert fetched == set(repo_files)  # weights: the first listed, no probing for others
    assert json.loads((path / "meta.json").read_text())["zoo"]["revision"] == commit


def test_hf_source_without_a_pinned_commit_is_refused(hub, converters, tmp_path):
    hub.publish("a/b", {"config.json": b"{}"})
    reg = entry("m", {"kind": "hf", "repo": "a/b"})
    with pytest.raises(AllSourcesFailed, match="a/b is not pinned to a commit.*--revision"):
        zoo.download("m", cache_dir=tmp_path, registry=reg, progress=False)
    assert hub.requests == [] and converters.calls == []


def test_openai_source_passes_hub_tokenizer_and_records_the_published_sha256(
    server, hub, converters, tmp_path
):
    commit = hub.publish("openai/whisper-tiny.en", {"tokenizer.json": b'{"model": {}}'})
    src = openai_source(server, BLOB) | {"tokenizer_repo": "openai/whisper-tiny.en"}
    path = zoo.download(
        "m", cache_dir=tmp_path, registry=entry("m", src | {"revision": commit}), progress=False
    )
    [(_, _, kwargs)] = converters.calls
    assert kwargs["tokenizer_json"] == b'{"model": {}}'
    zoo_meta = json.loads((path / "meta.json").read_text())["zoo"]
    assert zoo_meta["sha256"] == sha256(BLOB) and zoo_meta["revision"] == commit


def test_url_source_reads_local_dir_tar_and_http_directory(server, tmp_path):
    packed = write_packed(tmp_path / "packed", b"v1")
    archive = tmp_path / "packed.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(packed, arcname="my-model")
    for name in [*PACKED, "meta.json"]:
        server.files[f"/m/{name}"] = (packed / name).read_bytes()
    server.files["/m.tar.gz"] = archive.read_bytes()
    digest = sha256(archive.read_bytes())
    cases = {
        "dir": {"kind": "url", "url": str(packed)},
        "file-url-tar": {"kind": "url", "url": f"file://{archive}"},
        "http-dir": {"kind": "url", "url": f"{server.url}/m/"},
        "http-tar": {"kind": "url", "url": f"{server.url}/m.tar.gz", "sha256": digest},
    }
    for name, src in cases.items():
        path = zoo.download(
            name, cache_dir=tmp_path / "c", registry=entry(name, src), progress=False
        )
        assert (path / "model.pt").read_bytes() == (packed / "model.pt").read_bytes(), name
    # a corrupted file on the server fails verification against meta.json
    server.files["/m/model.pt"] = b"tampered"
    with pytest.raises(AllSourcesFailed, match="sha256 mismatch"):
        zoo.download("bad", cache_dir=tmp_path / "c", registry=entry("bad", cases["http-dir"]))
    assert cache_is_clean(tmp_path / "c", "bad")


def test_zoo_load_returns_a_working_model(tmp_path):
    import torch

    tok = tiny_packed_model(tmp_path / "packed")
    loaded = zoo.load("tiny-test", url=str(tmp_path / "packed"), cache_dir=tmp_path / "c")
    enc, enc_lens = loaded.model.encode(torch.randn(1, 40, 16), torch.tensor([40]))
    assert enc.shape[0] == 1 and loaded.tokenizer.vocab_size == tok.vocab_size
