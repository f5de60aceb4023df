"""speechkit/zoo/cache.py: a model is verified once and then checked by its records, and a
replacement leaves the old model or the new one whatever moment the process dies."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from conftest import tiny_packed_model, write_packed

from speechkit import integrity, zoo
from speechkit.zoo import cache
from speechkit.zoo.errors import AllSourcesFailed, ChecksumError


@pytest.fixture
def hashed(monkeypatch):
    """The files hashed since the fixture started (every check goes through sha256_file)."""
    calls: list[str] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p.name) or real(p))
    return calls


def test_a_verified_model_loads_without_hashing(tmp_path, hashed):
    tiny_packed_model(tmp_path / "packed")
    hashed.clear()
    where = {"url": str(tmp_path / "packed"), "cache_dir": tmp_path / "c"}
    zoo.download("tiny", **where)
    assert sorted(hashed) == ["config.yaml", "model.pt", "tokenizer.json", "tokenizer.model"]
    hashed.clear()
    zoo.load("tiny", **where)
    assert hashed == []  # neither the cache check nor load_pretrained read a file to hash it
    # a file that changed is hashed again (once: its record is renewed), and only that file
    model_pt = tmp_path / "c" / "tiny" / "model.pt"
    os.utime(model_pt, ns=(1, 1))
    zoo.load("tiny", **where)
    zoo.load("tiny", **where)
    assert hashed == ["model.pt"]


def test_verify_hashes_everything_and_finds_what_records_miss(tmp_path, hashed, capsys):
    path = zoo.download("m", url=str(write_packed(tmp_path / "p")), cache_dir=tmp_path / "c")
    hashed.clear()
    assert zoo.verify("m", cache_dir=tmp_path / "c") == path
    assert sorted(hashed) == ["config.yaml", "model.pt", "tokenizer.json", "tokenizer.model"]
    # bit rot that keeps size and mtime is invisible to the records, not to verify
    st = (path / "tokenizer.json").stat()
    (path / "tokenizer.json").write_bytes(b"X" * st.st_size)
    os.utime(path / "tokenizer.json", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.is_current(tmp_path / "c", "m")
    with pytest.raises(ChecksumError, match="tokenizer.json: sha256 does not match"):
        zoo.verify("m", cache_dir=tmp_path / "c")


MODELS = {b"v1": "old", b"v2": "new"}


def model_state(root) -> str | None:
    """'old' or 'new' if <root>/m is a complete model that verifies, None if it is missing."""
    if not (root / "m").exists():
        return None
    cache.verify_packed(root / "m", full=True)
    return MODELS[(root / "m" / "config.yaml").read_bytes().split(b":")[1]]


class Killer:
    """Raises KeyboardInterrupt before the ``at``-th filesystem step of an install."""

    def __init__(self, mp: pytest.MonkeyPatch, at: int):
        self.at, self.steps = at, 0
        for owner, name in [(cache, "record_verified"), (cache, "_exchange"), (os, "replace")]:
            mp.setattr(owner, name, self.wrap(getattr(owner, name)))
        mp.setattr(shutil, "rmtree", self.wrap(shutil.rmtree))

    def wrap(self, fn):
        def step(*args, **kwargs):
            self.steps += 1
            if self.steps == self.at:
                raise KeyboardInterrupt(f"killed before step {self.at}")
            return fn(*args, **kwargs)

        return step


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("at", range(1, 8))
def test_a_replacement_killed_at_any_step(tmp_path, exchange, at):
    root = tmp_path / "c"
    old, new = write_packed(tmp_path / "old", b"v1"), write_packed(tmp_path / "new", b"v2")
    zoo.download("m", url=str(old), cache_dir=root)
    with pytest.MonkeyPatch.context() as mp:
        if not exchange:  # a system without renameat2(RENAME_EXCHANGE)
            mp.setattr(cache, "_exchange", lambda a, b: False)
        killer = Killer(mp, at)
        try:
            zoo.download("m", url=str(new), cache_dir=root, force=True)
        except KeyboardInterrupt:
            pass
    state = model_state(root)
    if exchange:
        assert state in ("old", "new")  # at every moment
    # the next call (here with a source that fails, so what it returns is the cache) finishes
    # or undoes the replacement, and leaves nothing behind
    try:
        zoo.download("m", url=str(tmp_path / "nowhere"), cache_dir=root)
    except AllSourcesFailed:
        pytest.fail(f"no model after a kill before step {at} (state {state})")
    assert model_state(root) in ("old", "new") and (state is None or model_state(root) == state)
    assert not (root / ".replaced" / "m").exists() and not (root / ".staging" / "m").exists()
    if at > killer.steps:
        assert state == "new"  # the kill came after the last step


def test_exchange_is_used_where_the_system_has_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a")
    assert cache._exchange(a, b) == sys.platform.startswith("linux")  # glibc >= 2.28, local fs
    if sys.platform.startswith("linux"):
        assert (b / "x").read_text() == "a" and not (a / "x").exists()
