"""speechkit/zoo/hub.py (a repository at a pinned commit, fetched and verified) and the local hub
it is tested against (speechkit/zoo/local_hub.py), which must answer as huggingface_hub expects."""

from __future__ import annotations

import hashlib

import huggingface_hub
import pytest
from huggingface_hub import errors as hf_errors

from speechkit.zoo.errors import NetworkError, SourceError
from speechkit.zoo.hub import HubRepo, MissingHubFile

WEIGHTS = bytes(range(256)) * 40  # 10 kB: LFS (the fixture's threshold is 1 kB)


def test_local_hub_answers_as_huggingface_hub_expects(hub, tmp_path):
    commit = hub.publish("org/repo", {"config.json": b"{}", "sub/w.bin": WEIGHTS})
    fetch = {"repo_id": "org/repo", "cache_dir": tmp_path, "endpoint": hub.url}
    for revision in (commit, "main"):
        path = huggingface_hub.hf_hub_download(filename="sub/w.bin", revision=revision, **fetch)
        assert open(path, "rb").read() == WEIGHTS and commit in path
    info = huggingface_hub.HfApi(endpoint=hub.url).model_info(
        "org/repo", revision="main", files_metadata=True
    )
    files = {s.rfilename: s for s in info.siblings}
    assert info.sha == commit and files["config.json"].lfs is None
    assert files["sub/w.bin"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    with pytest.raises(hf_errors.RemoteEntryNotFoundError):
        huggingface_hub.hf_hub_download(filename="nope", revision=commit, **fetch)
    with pytest.raises(hf_errors.RevisionNotFoundError):
        huggingface_hub.hf_hub_download(filename="config.json", revision="f" * 40, **fetch)


def test_a_pinned_commit_is_fetched_after_the_branch_moved(hub, tmp_path):
    old = hub.publish("org/repo", {"w.bin": WEIGHTS, "config.json": b"{}"})
    hub.publish("org/repo", {"w.bin": WEIGHTS[::-1], "config.json": b"[]"})
    repo = HubRepo("org/repo", old, progress=False)
    assert repo.download("w.bin", tmp_path).read_bytes() == WEIGHTS
    assert repo.download("config.json", tmp_path).read_bytes() == b"{}"


def test_files_fetched_by_an_earlier_run_are_kept_if_they_verify(hub, tmp_path):
    commit = hub.publish("org/repo", {"w.bin": WEIGHTS, "config.json": b"{}"})
    HubRepo("org/repo", commit, progress=False).download("w.bin", tmp_path)
    gets = lambda: [p for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]  # noqa: E731
    HubRepo("org/repo", commit, progress=False).download("w.bin", tmp_path)
    assert len(gets()) == 1
    (tmp_path / "w.bin").write_bytes(WEIGHTS[:-1] + b"x")  # damaged on disk: fetched again
    assert HubRepo("org/repo", commit).download("w.bin", tmp_path).read_bytes() == WEIGHTS
    assert len(gets()) == 2 and [p.name for p in tmp_path.iterdir()] == ["w.bin"]


def test_a_dropped_transfer_is_resumed(hub, tmp_path, fast_retries):
    commit = hub.publish("org/repo", {"w.bin": WEIGHTS})
    respond = hub.respond

    def drop_unless_resumed(method, path, headers):
        answer = respond(method, path, headers)
        if method == "GET" and "/resolve/" in path and headers.get("Range") is None:
            answer.cut_after = 4096
        return answer

    hub.respond = drop_unless_resumed
    assert HubRepo("org/repo", commit).download("w.bin", tmp_path).read_bytes() == WEIGHTS
    assert [r for m, p, r in hub.requests if m == "GET" and "/resolve/" in p] == [
        None,
        "bytes=4096-",
    ]


def test_missing_things_are_named(hub, closed_port_url, tmp_path, monkeypatch):
    commit = hub.publish("org/repo", {"config.json": b"{}"})
    with pytest.raises(MissingHubFile, match="has no file 'model.bin'"):
        HubRepo("org/repo", commit).download("model.bin", tmp_path)
    with pytest.raises(SourceError, match="has no such commit"):
        HubRepo("org/repo", "f" * 40).download("config.json", tmp_path)
    with pytest.raises(SourceError, match="no such repository"):
        HubRepo("org/other", commit).download("config.json", tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url)
    with pytest.raises(NetworkError, match="cannot reach 127.0.0.1"):
        HubRepo("org/repo", commit).download("config.json", tmp_path)
