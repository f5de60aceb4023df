"""speechkit compute-contexts: speaker and event stores for every cut, cuts without a context
stored with valid=0 and counted (never a crash), and clear errors for bad arguments."""

from __future__ import annotations

import json

import pytest
import torch
from context_cuts import write_corpus, write_tagger

from speechkit.bin.compute_contexts import main
from speechkit.data.contexts import ContextStore

pytest.importorskip("librosa", reason="the separation extra is not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctx")
    manifest, events = write_corpus(root / "data")
    return manifest, write_tagger(root / "tagger"), events


@pytest.fixture(scope="module")
def computed(corpus, tmp_path_factory):
    manifest, tagger, _ = corpus
    out = tmp_path_factory.mktemp("ctx_out")
    argv = ["--cuts", str(manifest), "--kinds", "speaker,event", "--tagger", str(tagger),
            "--out", str(out), "--batch", "4", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_every_cut_gets_a_row_and_bad_cuts_are_invalid_not_fatal(computed, corpus):
    _, _, events = corpus
    speaker = ContextStore.load(computed, "speaker")
    event = ContextStore.load(computed, "event")
    assert set(speaker.index) == set(event.index) == set(events)
    assert speaker.dim == 256 and event.dim == 8
    assert "resemblyzer" in speaker.encoder.lower() and "tagger" in event.encoder
    no_speaker = {c for c in events if speaker.get(c) is None}
    assert no_speaker == {"short", "silent", "missing"}
    assert {c for c in events if event.get(c) is None} == {"missing"}  # 0.5 s is enough to tag
    vecs, known = speaker.batch(["low-a", "short", "high"])
    assert known.tolist() == [True, False, True]
    assert torch.allclose(vecs[[0, 2]].norm(dim=1), torch.ones(2), atol=1e-5)
    assert float(vecs[1].abs().sum()) == 0.0


def test_same_voice_is_closer_than_another_voice(computed):
    speaker = ContextStore.load(computed, "speaker")
    a, b, high = (speaker.get(c) for c in ("low-a", "low-b", "high"))
    assert float(a @ b) > float(a @ high)


def test_summary_counts_each_reason(corpus, tmp_path, capsys):
    manifest, _, _ = corpus
    assert main(["--cuts", str(manifest), "--kinds", "speaker", "--out", str(tmp_path),
                 "--speaker-min-seconds", "0.4", "--no-progress"]) == 0  # fmt: skip
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    summary = json.loads(line)
    # With a 0.4 s minimum the 0.5 s cut gets a d-vector; the silent and missing ones do not.
    assert summary["cuts"] == 6 and summary["valid"] == 4
    assert summary["invalid"] == {"silent": 1, "unreadable audio": 1}
    assert not (tmp_path / "event.safetensors").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kinds", "language"], "language-ID posterior"),
        (["--kinds", "speaker,pitch"], "unknown context kind 'pitch'"),
        (["--kinds", "event"], "need a trained tagger"),
        (["--kinds", "event", "--tagger", "/nonexistent/tagger"], "does not exist"),
    ],
)
def test_bad_kinds_and_missing_tagger_are_clear_errors(corpus, tmp_path, capsys, extra, message):
    manifest, _, _ = corpus
    with pytest.raises(SystemExit) as exc:
        main(["--cuts", str(manifest), "--out", str(tmp_path), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_tagger_dir_without_a_model_is_a_clear_error(corpus, tmp_path, capsys):
    manifest, _, _ = corpus
    with pytest.raises(SystemExit):
        main(["--cuts", str(manifest), "--kinds", "event", "--tagger", str(tmp_path),
              "--out", str(tmp_path / "o")])  # fmt: skip
    assert "no model_avg.pt" in capsys.readouterr().err


def test_bad_manifests_are_clear_errors(corpus, tmp_path, capsys):
    manifest, _, _ = corpus
    garbage = tmp_path / "bad.jsonl"
    garbage.write_text("this is not json\n")
    cases = [
        ([str(tmp_path / "none.jsonl.gz")], "does not exist"),
        ([str(garbage)], "cannot read cut manifest"),
        ([str(manifest), str(manifest)], "occurs twice"),
    ]
    for cuts, message in cases:
        with pytest.raises(SystemExit):
            main(["--cuts", *cuts, "--kinds", "speaker", "--out", str(tmp_path / "o")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
