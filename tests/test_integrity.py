"""speechkit/integrity.py: names that must stay inside a directory, and verification records
that let a check skip re-hashing unchanged files."""

from __future__ import annotations

import hashlib
import os

import pytest

from speechkit import integrity
from speechkit.integrity import (
    IntegrityError,
    UnsafePathError,
    check_files,
    safe_join,
    stale,
)


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "./a", "a//b", "a/", "a\\b", "C:x", "a\0b"],
)
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(UnsafePathError, match="not a plain relative path"):
        safe_join(tmp_path, name, "file name in meta.json")


def test_safe_names_and_links_on_disk(tmp_path):
    assert safe_join(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"
    (tmp_path / "out").symlink_to(tmp_path.parent)
    with pytest.raises(UnsafePathError, match="resolves outside"):
        safe_join(tmp_path, "out/x")


def write(directory, files: dict[str, bytes]) -> dict[str, str]:
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_records_skip_hashing_until_a_file_changes(tmp_path, monkeypatch):
    sums = write(tmp_path, {"a.bin": b"aaaa", "b.bin": b"bbbb"})
    records, hashed = check_files(tmp_path, sums)
    assert sorted(hashed) == ["a.bin", "b.bin"] and records["a.bin"]["size"] == 4
    hashes = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashes.append(p) or real(p))
    assert check_files(tmp_path, sums, records) == (records, []) and hashes == []
    assert stale(tmp_path, sums, records) == []
    # a rewrite (new mtime) is noticed without reading, and hashed again
    (tmp_path / "b.bin").write_bytes(b"bbbb")
    os.utime(tmp_path / "b.bin", ns=(1, 1))
    assert stale(tmp_path, sums, records) == ["b.bin"]
    records, hashed = check_files(tmp_path, sums, records)
    assert hashed == ["b.bin"] and [p.name for p in hashes] == ["b.bin"]
    # a record made for another digest does not vouch for the file
    assert stale(tmp_path, sums | {"a.bin": "0" * 64}, records) == ["a.bin"]
    # full=True ignores the records
    assert sorted(check_files(tmp_path, sums, records, full=True)[1]) == ["a.bin", "b.bin"]


def test_bad_files_are_named(tmp_path):
    sums = write(tmp_path, {"a.bin": b"aaaa"})
    (tmp_path / "a.bin").write_bytes(b"aaab")
    with pytest.raises(IntegrityError, match="a.bin: sha256 does not match meta.json"):
        check_files(tmp_path, sums)
    (tmp_path / "a.bin").unlink()
    with pytest.raises(IntegrityError, match="a.bin: missing"):
        check_files(tmp_path, sums)
    (tmp_path / "a.bin").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IntegrityError, match="a.bin: a link"):
        check_files(tmp_path, sums)
    with pytest.raises(UnsafePathError):
        check_files(tmp_path, {"../x": sums["a.bin"]})
