"""speechkit.bin.decode end to end on tiny random packed models (S2T and Whisper) and a few
synthetic cuts, a wav.scp and files; every result scored by speechkit.bin.score."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from speechkit.bin import decode as decode_bin
from speechkit.bin import score as score_bin

s2t = pytest.importorskip("speechkit.models.s2t")
pretrained = pytest.importorskip("speechkit.pretrained")
features = pytest.importorskip("speechkit.data.features")
tokenizer = pytest.importorskip("speechkit.text.sentencepiece")

SENTENCES = [
    ("eng", "the red cat", {"deu": "die rote Katze"}),
    ("eng", "a green dog", {"deu": "ein grüner Hund"}),
    ("deu", "ein blauer Vogel", {"eng": "a blue bird", "fra": "un oiseau bleu"}),
]


def _cut(path, i, lang, text, translations, seconds=0.6):
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, (0.2 * np.sin(2 * np.pi * (150 + 50 * i) * t)).astype(np.float32), 16000)
    cut = Recording.from_file(path, recording_id=f"rec{i}").to_cut()
    cut.supervisions = [
        SupervisionSegment(
            f"sup{i}",
            f"rec{i}",
            0.0,
            cut.duration,
            text=text,
            language=lang,
            speaker=f"{lang}-s{i}",
            custom={"translations": translations},
        )
    ]
    return cut


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dec")
    cuts = [_cut(root / f"a{i}.flac", i, *s) for i, s in enumerate(SENTENCES)]
    bad = _cut(root / "broken.flac", 9, "eng", "the cat", {"deu": "die Katze"})
    (root / "broken.flac").write_bytes(b"garbage" * 20)
    CutSet.from_cuts([*cuts, bad]).to_file(root / "cuts.jsonl.gz")

    texts = [s[1] for s in SENTENCES] + [t for s in SENTENCES for t in s[2].values()]
    tok = tokenizer.SentencePieceTokenizer.train(
        texts * 3,
        None,
        tokenizer.TokenizerConfig(vocab_size=30),
        ["eng", "deu"],
        ["asr", "st_eng", "st_deu"],
    )
    torch.manual_seed(0)
    feat_cfg = features.FeatureConfig(n_mels=16)
    cfg = s2t.S2TConfig(
        n_mels=16,
        vocab_size=tok.vocab_size,
        d_model=32,
        n_heads=2,
        encoder_type="transformer",
        encoder_layers=1,
        encoder_ffn=32,
        decoder_layers=1,
        decoder_ffn=32,
        dropout=0.0,
        attention_dropout=0.0,
        max_target_positions=32,
    )
    pretrained.save_pretrained(s2t.S2TModel(cfg), tok, feat_cfg, root / "packed")
    return root


def _lines(path):
    return path.read_text().splitlines()


def test_auto_tasks_write_every_direction(setup, tmp_path, caplog):
    out = tmp_path / "out"
    args = ["--model", str(setup / "packed"), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--beam-size", "2", "--ctc-weight", "0.3", "--max-len", "5",
            "--device", "cpu", "--batch-duration", "1.0"]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        assert decode_bin.main(args) == 0
    assert "broken.flac" in caplog.text
    # "fra" has no st_fra token in the tokenizer, so no st_deu-fra directory.
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert dirs == ["asr_deu", "asr_eng", "st_deu-eng", "st_eng-deu"]
    hyp_ids = [ln.split(" ", 1)[0] for ln in _lines(out / "asr_eng" / "hyp.txt")]
    all_cuts = CutSet.from_file(setup / "cuts.jsonl.gz")
    assert hyp_ids == sorted(c.id for c in all_cuts if c.recording_id in ("rec0", "rec1"))
    refs = dict(ln.split(" ", 1) for ln in _lines(out / "st_eng-deu" / "ref.txt"))
    assert sorted(refs.values()) == ["die rote Katze", "ein grüner Hund"]
    rec = json.loads(_lines(out / "st_deu-eng" / "hyps.jsonl")[0])
    assert set(rec) == {"id", "hyp", "ref", "score"} and rec["ref"] == "a blue bird"
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["num_skipped"] == 1 and "broken.flac" in stats["skipped"][0]["error"]
    assert stats["audio_seconds"] == pytest.approx(1.8, abs=0.01) and stats["rtfx"] > 0
    assert stats["options"]["ctc_weight"] == 0.3
    assert score_bin.main(["--decode-dir", str(out)]) == 0
    assert (out / "scores.json").is_file()


def test_explicit_tasks_and_max_utts(setup, tmp_path):
    out = tmp_path / "out"
    args = ["--model", str(setup / "packed"), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--tasks", "asr", "--beam-size", "1", "--max-len", "4",
            "--max-utts", "2"]  # fmt: skip
    assert decode_bin.main(args) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["asr_eng"]
    assert len(_lines(out / "asr_eng" / "hyp.txt")) == 2


def test_two_pass_translation_is_prompted_with_the_first_pass_transcript(
    setup, tmp_path, monkeypatch
):
    calls = []  # (prefixes, hypotheses) of every search

    def recording_search(model, enc, enc_lens, prefix, opts, ids):
        nbests = decode_bin.greedy_search(model, enc, enc_lens, prefix, opts, ids)
        calls.append((prefix.tolist(), [n[0].tokens for n in nbests]))
        return nbests

    monkeypatch.setattr(decode_bin, "beam_search", recording_search)
    tok = tokenizer.SentencePieceTokenizer.load(setup / "packed")
    out = tmp_path / "out"
    args = ["--model", str(setup / "packed"), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--tasks", "st_deu", "--beam-size", "2", "--max-len", "4",
            "--st-prompt", "both"]  # fmt: skip
    assert decode_bin.main(args) == 0
    # The transcripts were decoded (first pass) but not asked for, so not written.
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "st_eng-deu", "st_eng-deu.2pass"
    ]  # fmt: skip
    assert json.loads((out / "decode_stats.json").read_text())["st_prompt"] == "both"
    asr_sot = tok.sot_sequence("eng", "asr")
    st_sot = tok.sot_sequence("eng", "st_deu")
    first = [c for c in calls if c[0][0] == asr_sot]
    assert len(first) == 1 and len(first[0][0]) == 2  # both English cuts, one batch
    transcripts = first[0][1]
    prompted = [p for c in calls for p in c[0] if p[0] == tok.sop_id]
    expected = [[tok.sop_id, *t, *st_sot] for t in transcripts]
    assert sorted(prompted) == sorted(expected)
    direct = [p for c in calls for p in c[0] if p == st_sot]
    assert len(direct) == 2


def test_st_prompt_auto_follows_the_training_config(setup, tmp_path):
    out = tmp_path / "out"
    args = ["--model", str(setup / "packed"), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--tasks", "st_deu", "--beam-size", "1", "--max-len", "3"]  # fmt: skip
    assert decode_bin.main(args) == 0  # packed without st_source_prompt: direct only
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["st_eng-deu"]
    assert json.loads((out / "decode_stats.json").read_text())["st_prompt"] == "none"


def test_unknown_task_is_rejected(setup, tmp_path):
    args = [
        "--model",
        str(setup / "packed"),
        "--cuts",
        str(setup / "cuts.jsonl.gz"),
        "--out",
        str(tmp_path),
        "--tasks",
        "st_klingon",
    ]
    with pytest.raises(SystemExit, match="st_klingon"):
        decode_bin.main(args)


def test_batches_are_sorted_and_capped():
    class C:
        def __init__(self, d):
            self.duration = d

    batches = decode_bin.make_batches([C(1.0), C(5.0), C(2.0), C(2.5)], 5.0)
    assert [[c.duration for c in b] for b in batches] == [[5.0], [2.5, 2.0], [1.0]]


# ---- Whisper models, wav.scp and file inputs ---------------------------------------------------


@pytest.fixture(scope="module")
def whisper_packed(tmp_path_factory):
    """A packed tiny random multilingual Whisper model (30 s windows, like the real ones)."""
    pytest.importorskip("tokenizers")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
    from whisper_fakes import write_tiny_whisper

    return write_tiny_whisper(tmp_path_factory.mktemp("whisper") / "packed")


def test_whisper_model_decodes_cuts_into_scored_directories(setup, whisper_packed, tmp_path):
    """Before one decode path, a Whisper model died here with an AttributeError."""
    out = tmp_path / "out"
    args = ["--model", str(whisper_packed), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--beam-size", "2", "--max-len", "4", "--tasks", "asr,st_eng",
            "--batch-size", "2"]  # fmt: skip
    assert decode_bin.main(args) == 0
    # Whisper speaks eng and deu here; it translates only into English (st_deu-eng).
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert dirs == ["asr_deu", "asr_eng", "st_deu-eng"]
    assert len(_lines(out / "asr_eng" / "hyp.txt")) == 2  # the broken cut is skipped
    refs = dict(ln.split(" ", 1) for ln in _lines(out / "st_deu-eng" / "ref.txt"))
    assert list(refs.values()) == ["a blue bird"]
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["model_type"] == "whisper" and stats["num_skipped"] == 1
    assert stats["options"]["beam_size"] == 2 and stats["options"]["max_len"] == 4
    assert score_bin.main(["--decode-dir", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert {s["name"]: s["kind"] for s in scores} == {
        "asr_deu": "asr", "asr_eng": "asr", "st_deu-eng": "st"
    }  # fmt: skip


def test_whisper_decode_equals_the_transcriber(setup, whisper_packed, tmp_path):
    """speechkit decode and speechkit transcribe share one decoder: same words, same audio."""
    from speechkit.data.audio import load_audio
    from speechkit.inference import TranscribeOptions, Transcriber

    out = tmp_path / "out"
    args = ["--model", str(whisper_packed), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--beam-size", "2", "--max-len", "4", "--tasks", "asr",
            "--languages", "eng"]  # fmt: skip
    assert decode_bin.main(args) == 0
    hyps = dict(ln.partition(" ")[::2] for ln in _lines(out / "asr_eng" / "hyp.txt"))
    cuts = [c for c in CutSet.from_file(setup / "cuts.jsonl.gz") if c.id in hyps]
    tr = Transcriber(pretrained.load_pretrained(whisper_packed),
                     TranscribeOptions(beam=2, language="eng", max_new_tokens=4))  # fmt: skip
    results = tr([load_audio(c) for c in cuts], [c.id for c in cuts])
    assert {r.name: " ".join(r.text.split()) for r in results} == hyps


def test_wav_scp_files_and_text_references(setup, tmp_path):
    """A wav.scp (a file and, with --allow-pipes, a pipe) plus files given by name; references
    from a Kaldi text file; the unreadable file is skipped by name."""
    wavs = [setup / "a0.flac", setup / "a1.flac"]
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u0 {wavs[0]}\nu1 cat {wavs[1]} |\n")
    text = tmp_path / "text"
    text.write_text(f"u0 the red cat\nu1 a green dog\n{wavs[0]} the red cat\n")
    out = tmp_path / "out"
    args = ["--model", str(setup / "packed"), "--wav-scp", str(scp), "--allow-pipes",
            str(wavs[0]), str(setup / "broken.flac"), "--text", str(text), "--language", "eng",
            "--out", str(out), "--beam-size", "1", "--max-len", "3"]  # fmt: skip
    assert decode_bin.main(args) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["asr_eng"]
    hyp_ids = [ln.split(" ", 1)[0] for ln in _lines(out / "asr_eng" / "hyp.txt")]
    assert hyp_ids == sorted([str(wavs[0]), "u0", "u1"])
    refs = dict(ln.split(" ", 1) for ln in _lines(out / "asr_eng" / "ref.txt"))
    assert refs == {str(wavs[0]): "the red cat", "u0": "the red cat", "u1": "a green dog"}
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["num_cuts"] == 4 and stats["num_skipped"] == 1
    assert "broken.flac" in stats["skipped"][0]["error"]
    assert score_bin.main(["--decode-dir", str(out)]) == 0


def test_a_pipe_runs_only_with_allow_pipes(setup, tmp_path, caplog):
    """Hostile inputs: a wav.scp pipe without --allow-pipes, and a pipe given as a file name;
    neither command runs (the marker file it would create never appears)."""
    marker = tmp_path / "ran"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u0 {setup / 'a0.flac'}\nu1 touch {marker} |\n")
    base = ["--model", str(setup / "packed"), "--language", "eng", "--beam-size", "1",
            "--max-len", "2"]  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert decode_bin.main([*base, "--wav-scp", str(scp), "--out", str(tmp_path / "a")]) == 2
    assert "--allow-pipes" in caplog.text and "wav.scp:2" in caplog.text
    assert not (tmp_path / "a" / "asr_eng").exists()
    out = tmp_path / "b"
    assert decode_bin.main([*base, f"touch {marker} |", "--out", str(out)]) == 0
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["num_skipped"] == 1 and "no such file" in stats["skipped"][0]["error"]
    assert not marker.exists()


def test_separation_front_end_runs_before_recognition(setup, tmp_path, monkeypatch):
    """``--frontend DIR``: every input goes through the trained separator's extraction of the
    query before its features are computed."""
    from speechkit.checkpoint import save_checkpoint
    from speechkit.config import to_dict
    from speechkit.models.separation import Separator, SeparatorConfig
    from speechkit.separate import Extractor

    torch.manual_seed(0)
    sep = Separator(SeparatorConfig(channels=8, hidden=8, query_dim=4, dilations=[1], stacks=1))
    sep_dir = tmp_path / "sep"
    save_checkpoint({"model": sep.state_dict(),
                     "config": {"model_type": "separator", "model": to_dict(sep.cfg)}},
                    sep_dir / "model_avg.pt")  # fmt: skip
    calls = []
    real = Extractor.__call__
    monkeypatch.setattr(
        Extractor,
        "__call__",
        lambda self, w, sr=16000: calls.append((len(w), self.remix)) or real(self, w, sr),
    )
    out = tmp_path / "out"
    args = ["--model", str(setup / "packed"), "--cuts", str(setup / "cuts.jsonl.gz"),
            "--out", str(out), "--tasks", "asr", "--beam-size", "1", "--max-len", "4",
            "--frontend", str(sep_dir)]  # fmt: skip
    assert decode_bin.main(args) == 0
    stats = json.loads((out / "decode_stats.json").read_text())
    assert stats["frontend"] == {"model": str(sep_dir), "query": "speech", "remix": 0.0}
    assert len(calls) == 3  # the three readable inputs (the broken one is skipped)
    assert {remix for _, remix in calls} == {0.0}
    # The input's share added back reaches the extractor and the stats.
    again = [*args, "--frontend-remix", "0.25"]
    again[again.index("--out") + 1] = str(tmp_path / "remix")
    assert decode_bin.main(again) == 0
    assert {remix for _, remix in calls[3:]} == {0.25} and len(calls) == 6
    stats = json.loads((tmp_path / "remix" / "decode_stats.json").read_text())
    assert stats["frontend"]["remix"] == 0.25
    # A query the separator does not know, a share outside [0, 1]: a clear error, status 2.
    for extra in (["--frontend-query", "thunder"], ["--frontend-remix", "1.5"]):
        bad = [*args, *extra]
        bad[bad.index("--out") + 1] = str(tmp_path / "bad")
        assert decode_bin.main(bad) == 2
