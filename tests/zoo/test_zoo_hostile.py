"""Hostile inputs: names, digests and answers from outside the cache, as an attacker or a broken
server would send them, against 127.0.0.1 servers and crafted files.

Every case must end in a clear error, with the cache unchanged: the model installed before is
byte-identical, nothing was added or left half-written (staging, ``*.part``, ``*.incomplete``),
and nothing was written outside the cache (every escaping name contains ``pwned``; no such file
may appear). ``.locks`` and ``.downloads`` are scratch, not models: they are left out of the
comparison, and a case about them (a dropped connection keeps its ``.part`` to resume) says so.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import PACKED, sha256, tiny_packed_model, write_packed

from speechkit import zoo
from speechkit.pretrained import PackedModelError, load_pretrained
from speechkit.zoo.errors import AllSourcesFailed
from speechkit.zoo.local_hub import Answer, LocalHub
from speechkit.zoo.registry import ModelEntry, SourceSpec
from speechkit.zoo.sources import FetchContext

SCRATCH = (".locks", ".downloads")
FILES = {name: f"{name}: served".encode() for name in PACKED}


def cache_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).parts[0] not in SCRATCH
    }


class Guard:
    """A cache holding model ``m``; ``attempt`` tries to replace it and checks the aftermath."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.root = tmp_path / "cache"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        zoo.download("m", url=str(write_packed(tmp_path / "good", b"v1")), cache_dir=self.root)
        self.before = cache_files(self.root)

    def attempt(self, source: dict, match: str, parts_allowed: bool = False) -> None:
        reg = {"m": ModelEntry(name="m", sources=[SourceSpec(**source)])}
        with pytest.raises(AllSourcesFailed, match=match):
            zoo.download("m", cache_dir=self.root, registry=reg, force=True, progress=False)
        self.check(parts_allowed)

    def check(self, parts_allowed: bool = False) -> None:
        assert cache_files(self.root) == self.before  # the old model, intact; nothing added
        leftovers = [*self.root.rglob("*.incomplete"), *self.root.rglob("*.tmp")]
        if not parts_allowed:
            leftovers += self.root.rglob("*.part")
        assert leftovers == []
        assert not [p for p in self.tmp.parents[1].rglob("*pwned*")]  # nothing escaped
        assert not Path("/pwned").exists() and list(self.outside.iterdir()) == []


@pytest.fixture
def guard(tmp_path):
    return Guard(tmp_path)


ESCAPES = ["../pwned", "sub/../../pwned", "../" * 12 + "pwned", "OUTSIDE/pwned-abs"]


def escape_name(name: str, guard: Guard) -> str:
    return name.replace("OUTSIDE", str(guard.outside))


# ---------------------------------------------------------------- a packed directory over HTTP


def serve_packed(server, files: dict[str, bytes], sums: dict[str, str] | None = None) -> str:
    sums = sums if sums is not None else {n: sha256(d) for n, d in files.items()}
    for name, data in files.items():
        server.files[f"/m/{name}"] = data
    server.files["/m/meta.json"] = json.dumps({"sha256": sums}).encode()
    return f"{server.url}/m"


@pytest.mark.parametrize("name", ESCAPES)
def test_manifest_name_leaving_the_directory(server, guard, name):
    name = escape_name(name, guard)
    url = serve_packed(server, FILES | {name: b"pwned"})
    guard.attempt({"kind": "url", "url": url}, match="refusing .*pwned.*not a plain relative")
    assert not any("pwned" in path for path in server.paths_requested())  # checked first


def test_manifest_listing_meta_json_itself(server, guard):
    url = serve_packed(server, FILES | {"meta.json": b"{}"})
    guard.attempt({"kind": "url", "url": url}, match="bad entry 'meta.json'")


def test_manifest_digest_mismatch(server, guard):
    url = serve_packed(server, FILES, {n: sha256(b"other") for n in FILES})
    guard.attempt({"kind": "url", "url": url}, match="sha256 mismatch")


def test_manifest_pinned_but_replaced_with_its_files(server, guard):
    """The server rewrote files and meta.json consistently; the registry's pin of meta.json
    still catches it."""
    url = serve_packed(server, FILES)
    pinned = sha256(server.files["/m/meta.json"])
    serve_packed(server, {n: b"evil " + d for n, d in FILES.items()})
    guard.attempt({"kind": "url", "url": url, "sha256": pinned}, match="meta.json: sha256 mismatch")


def test_truncated_file(server, guard):
    """The server ends the body early but says it is complete (a short Content-Length)."""
    url = serve_packed(server, FILES)
    server.files["/m/model.pt"] = FILES["model.pt"][:5]
    guard.attempt({"kind": "url", "url": url}, match="model.pt: sha256 mismatch")


def test_connection_dropped_every_time(server, guard):
    url = serve_packed(server, FILES)
    server.drop_always.add("/m/model.pt")
    guard.attempt({"kind": "url", "url": url}, match="connection dropped .* 4 times")
    first, *resumes = [r for p, r in server.requests if p == "/m/model.pt"]
    assert first is None and len(resumes) == 3 and all(r.startswith("bytes=") for r in resumes)


# ---------------------------------------------------------------- archives


def tar_with(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, content in data.items():
            info = tarfile.TarInfo(f"my-model/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for member in members:
            tar.addfile(member)
    return path


def member(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    """A header-only member (a link, a FIFO, or an empty regular file)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


ARCHIVES = {  # the member added to a good archive, and what the refusal says
    "symlink out": (("my-model/pwned", tarfile.SYMTYPE, "/etc/passwd"), "link or special"),
    "symlink in": (("my-model/pwned", tarfile.SYMTYPE, "config.yaml"), "link or special"),
    "hard link": (("my-model/pwned", tarfile.LNKTYPE, "my-model/model.pt"), "link or special"),
    "fifo": (("my-model/pwned", tarfile.FIFOTYPE, ""), "link or special"),
    "dot-dot": (("../pwned", tarfile.REGTYPE, ""), "not a plain relative path"),
    "absolute": (("OUTSIDE/pwned-abs", tarfile.REGTYPE, ""), "not a plain relative path"),
}


@pytest.mark.parametrize("case", sorted(ARCHIVES))
def test_archive_member(guard, case):
    (name, kind, target), message = ARCHIVES[case]
    members = [member(escape_name(name, guard), kind, target)]
    files = {n: (guard.tmp / "good" / n).read_bytes() for n in [*PACKED, "meta.json"]}
    archive = tar_with(guard.tmp / "evil.tar", members, files)
    guard.attempt({"kind": "url", "url": str(archive)}, match=message)


def test_archive_manifest_naming_a_file_outside(guard):
    files = {n: (guard.tmp / "good" / n).read_bytes() for n in PACKED}
    meta = json.loads((guard.tmp / "good" / "meta.json").read_text())
    meta["sha256"]["../../pwned"] = sha256(b"x")
    archive = tar_with(guard.tmp / "evil.tar", [], files | {"meta.json": json.dumps(meta).encode()})
    guard.attempt({"kind": "url", "url": str(archive)}, match="not a plain relative path")


def test_archive_digest_mismatch_over_http(server, guard):
    files = {n: (guard.tmp / "good" / n).read_bytes() for n in [*PACKED, "meta.json"]}
    server.files["/m.tar"] = tar_with(guard.tmp / "ok.tar", [], files).read_bytes()
    source = {"kind": "url", "url": f"{server.url}/m.tar", "sha256": sha256(b"another archive")}
    guard.attempt(source, match="sha256 mismatch")


def test_local_directory_with_a_link(guard):
    """A link in a packed directory, even one whose target has the right digest."""
    evil = write_packed(guard.tmp / "evil", b"v2")
    target = guard.outside.parent / "elsewhere.pt"
    os.replace(evil / "model.pt", target)
    (evil / "model.pt").symlink_to(target)
    guard.attempt({"kind": "url", "url": str(evil)}, match="model.pt: a link")


# ---------------------------------------------------------------- an OpenAI checkpoint


def openai(server, data: bytes, digest: str) -> dict:
    server.files["/w/abc/tiny.pt"] = data
    return {"kind": "openai", "url": f"{server.url}/w/abc/tiny.pt", "sha256": digest}


def test_checkpoint_digest_mismatch(server, guard, converters):
    guard.attempt(openai(server, b"evil weights", sha256(b"weights")), match="sha256 mismatch")
    assert converters.calls == []


def test_416_on_a_partial_file(server, guard, converters):
    """A leftover .part as long as the file: the server's 416 says it is complete, but it is
    not the file the digest pins."""
    source = openai(server, b"real weights", sha256(b"real weights"))
    where = FetchContext(guard.root / ".downloads").download_dir(source["url"])
    (where / "tiny.pt.part").write_bytes(b"xxxx weights")  # same length, other bytes
    guard.attempt(source, match="sha256 mismatch")
    assert ("/w/abc/tiny.pt", "bytes=12-") in server.requests and converters.calls == []


def test_file_changed_between_partial_download_and_resume(server, guard, converters):
    """The first run drops mid-file; then the server replaces the file and answers the resume
    with bytes of the new version, ignoring If-Range. The new ETag gives it away: the file is
    fetched again whole (never spliced), and the pinned digest refuses the new version."""
    old, new = b"A" * 5000, b"B" * 5000
    source = openai(server, old, sha256(old))
    server.etags = True
    server.drop_always.add("/w/abc/tiny.pt")
    guard.attempt(source, match="connection dropped", parts_allowed=True)
    server.drop_always.clear()
    server.files["/w/abc/tiny.pt"] = new
    server.ignore_if_range = True
    guard.attempt(source, match="sha256 mismatch")
    assert server.requests[-1] == ("/w/abc/tiny.pt", None)  # refetched whole
    assert converters.calls == []


# ---------------------------------------------------------------- a Hugging Face hub


class HostileHub(LocalHub):
    """A LocalHub whose answers ``tamper(method, path, headers, answer)`` may rewrite."""

    def __init__(self):
        super().__init__(lfs_threshold=1024)
        self.tamper = lambda method, path, headers, answer: answer

    def respond(self, method, path, headers):
        return self.tamper(method, path, headers, super().respond(method, path, headers))


@pytest.fixture
def hostile_hub(monkeypatch):
    with HostileHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


WEIGHTS = bytes(range(256)) * 40  # 10 kB: an LFS file
REPO = {"config.json": b"{}", "tokenizer.json": b"{}", "model.safetensors": WEIGHTS}


def hf(commit: str, **extra) -> dict:
    return {"kind": "hf", "repo": "openai/whisper-x", "revision": commit} | extra


@pytest.mark.parametrize("name", ESCAPES)
def test_hub_listing_name_leaving_the_directory(hostile_hub, guard, converters, name):
    commit = hostile_hub.publish("openai/whisper-x", REPO | {escape_name(name, guard): b"pwned"})
    guard.attempt(hf(commit), match="refusing .*pwned.*not a plain relative path")
    assert [m for m, p, _ in hostile_hub.requests if "resolve" in p] == []  # nothing fetched


def test_hub_manifest_naming_a_file_outside(hostile_hub, guard):
    """An ESPnet repo's meta.yaml names the weights file: here a path out of the repo."""
    meta = b"files: {s2t_model_file: ../../pwned}\nyaml_files: {s2t_train_config: c.yaml}\n"
    commit = hostile_hub.publish("espnet/x", {"meta.yaml": meta, "c.yaml": b"{}"})
    source = {"kind": "hf", "repo": "espnet/x", "revision": commit, "converter": "espnet"}
    guard.attempt(source, match="refusing .*pwned.*not a plain relative path")


def lie(**headers):
    def tamper(method, path, _, answer):
        if "/resolve/" in path and "model.safetensors" in path:
            answer.headers.update(headers)
        return answer

    return tamper


@pytest.mark.parametrize(
    "headers",
    [
        {"ETag": '"../../../pwned"', "X-Linked-Etag": '"../../../pwned"'},
        {"X-Repo-Commit": "f" * 40},
        {"X-Linked-Size": "3"},
    ],
    ids=["path-as-etag", "other-commit", "other-size"],
)
def test_hub_answer_disagreeing_with_the_listing(hostile_hub, guard, converters, headers):
    commit = hostile_hub.publish("openai/whisper-x", REPO)
    hostile_hub.tamper = lie(**headers)
    guard.attempt(hf(commit), match="disagrees with the listing")
    assert converters.calls == []


def test_hub_listing_for_another_commit(hostile_hub, guard, converters):
    commit = hostile_hub.publish("openai/whisper-x", REPO)
    moved = hostile_hub.publish("openai/whisper-x", REPO | {"config.json": b"[]"})

    def tamper(method, path, headers, answer):
        if path.startswith("/api/"):
            answer.body = answer.body.replace(commit.encode(), moved.encode())
        return answer

    hostile_hub.tamper = tamper
    guard.attempt(hf(commit), match=f"answered for commit '{moved}' instead")


def body(data: bytes, **changes):
    def tamper(method, path, headers, answer):
        if method == "GET" and "model.safetensors" in path:
            return Answer(answer.status, answer.headers, data, **changes)
        return answer

    return tamper


def test_hub_file_digest_mismatch(hostile_hub, guard, converters):
    commit = hostile_hub.publish("openai/whisper-x", REPO)
    hostile_hub.tamper = body(bytes(reversed(WEIGHTS)))  # same size, other bytes
    guard.attempt(hf(commit), match="do not hash to the listed sha256")
    assert converters.calls == []


def test_hub_truncated_download(hostile_hub, guard, converters):
    commit = hostile_hub.publish("openai/whisper-x", REPO)
    hostile_hub.tamper = body(WEIGHTS[:1000])  # a complete answer, 1000 bytes
    guard.attempt(hf(commit), match="truncated download")


def drop_then(second: bytes | None):
    """Sends half of the weights and drops the connection; answers the resume (a Range request)
    with ``second``'s bytes from that offset, or with 416 if ``second`` is None."""

    def tamper(method, path, headers, answer):
        if method != "GET" or "model.safetensors" not in path:
            return answer
        if headers.get("Range") is None:
            answer.cut_after = len(WEIGHTS) // 2
            return answer
        if second is None:
            return Answer(416, {"Content-Range": f"bytes */{len(WEIGHTS)}"})
        start = int(headers["Range"].removeprefix("bytes=").rstrip("-"))
        return Answer(206, dict(answer.headers), second[start:])

    return tamper


def test_hub_branch_moved_between_partial_download_and_resume(
    hostile_hub, guard, converters, fast_retries
):
    """The first transfer drops halfway; the resume gets the bytes of the version the branch
    moved to. The spliced file does not hash to the pinned listing: refused, nothing kept."""
    commit = hostile_hub.publish("openai/whisper-x", REPO)
    hostile_hub.publish("openai/whisper-x", REPO | {"model.safetensors": bytes(reversed(WEIGHTS))})
    hostile_hub.tamper = drop_then(bytes(reversed(WEIGHTS)))
    guard.attempt(hf(commit), match="do not hash to the listed sha256")
    assert ("GET", f"/openai/whisper-x/resolve/{commit}/model.safetensors", "bytes=5120-") in (
        hostile_hub.requests
    )


def test_hub_416_on_a_partial_file(hostile_hub, guard, converters, fast_retries):
    commit = hostile_hub.publish("openai/whisper-x", REPO)
    hostile_hub.tamper = drop_then(None)
    guard.attempt(hf(commit), match="HTTP 416")


# ---------------------------------------------------------------- weights that run code


class RunsCode:
    """Unpickling this calls ``os.mkdir(path)``: the side effect a safe loader must prevent."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def evil_packed(directory: Path, marker: Path) -> Path:
    """A packed model whose weights run code when unpickled; every checksum matches."""
    tiny_packed_model(directory)
    torch.save({"weight": torch.zeros(2), "x": RunsCode(marker)}, directory / "model.pt")
    meta = json.loads((directory / "meta.json").read_text())
    meta["sha256"]["model.pt"] = sha256((directory / "model.pt").read_bytes())
    (directory / "meta.json").write_text(json.dumps(meta))  # checksums all match
    return directory


def test_weights_that_run_code_never_enter_the_cache(guard):
    marker = guard.outside.parent / "pwned-by-pickle"
    source = {"kind": "url", "url": str(evil_packed(guard.tmp / "evil", marker))}
    guard.attempt(source, match="refusing to load .*model.pt.*could run code")
    assert not marker.exists()


def test_weights_that_run_code_are_refused_on_load(tmp_path):
    marker = tmp_path / "pwned-by-pickle"
    packed = evil_packed(tmp_path / "evil", marker)
    with pytest.raises(PackedModelError, match="refusing to load .*could run code"):
        load_pretrained(packed)
    checkpoint = tmp_path / "model_avg.pt"
    torch.save({"config": {}, "model": RunsCode(marker)}, checkpoint)
    with pytest.raises(RuntimeError, match="refusing to load .*GLOBAL posix.mkdir"):
        zoo.load(str(checkpoint))
    assert not marker.exists()
