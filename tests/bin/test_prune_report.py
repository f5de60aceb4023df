"""speechkit prune-arms report: the arms' scores, GFLOPs, sparsity and speed in one table, means
over seeds with their range, an oracle-language row for the language arms, and gate pictures."""

from __future__ import annotations

import json

import pytest
import yaml

from speechkit.bin import prune_arms
from speechkit.bin.prune_report import (
    event_groups,
    gate_pictures,
    gate_usage,
    kmeans,
    speaker_groups,
    write_report,
)


def _decode_dir(d, wer, bleu, gflops=None, lid=None):
    d.mkdir(parents=True)
    scores = [
        {"name": "asr_eng", "wer": {"rate": wer}},
        {"name": "st_eng-deu", "bleu": {"cased": bleu}},
        {"name": "st_eng-fra", "bleu": {"cased": bleu + 2}},
        {"name": "st_deu-eng", "bleu": {"cased": bleu - 10}},
    ]
    (d / "scores.json").write_text(json.dumps(scores))
    gates = None
    if gflops is not None:
        gates = {"gflops_enc": gflops, "gflops_dec": gflops / 4, "sparsity": 0.45,
                 "gflops_full": 2.5, "gflops_search": 2 * gflops, "gflops_full_search": 5.0}  # fmt: skip
        if lid is not None:
            gates["lid_accuracy"] = lid
    (d / "decode_stats.json").write_text(json.dumps({"gates": gates}))
    asr = d / "asr_eng"
    asr.mkdir()
    (asr / "gates.jsonl").write_text(
        json.dumps({"id": "c0", "enc_gates": "10", "dec_gates": "011"}) + "\n"
        + json.dumps({"id": "c1", "enc_gates": "11", "dec_gates": "001"}) + "\n"
    )  # fmt: skip


def test_report_table_and_pictures(tmp_path):
    exp = tmp_path / "exp"
    for seed, wer in ((0, 2.0), (1, 4.0)):
        _decode_dir(exp / "full" / f"s{seed}" / "decode_test_seen", wer, 80.0, 1.0)
        run = exp / "dyn_lang" / f"s{seed}"
        _decode_dir(run / "decode_test_seen", wer + 1, 78.0, 0.5, lid=0.9)
        _decode_dir(run / "decode_test_seen_oracle", wer + 0.5, 79.0, 0.5)
        bench = {s: {"rtfx_gated": 30.0, "rtfx_full": 20.0, "speedup_total": 1.5}
                 for s in ("batch1", "batched")}  # fmt: skip
        (run / "bench_test_seen.json").write_text(json.dumps(bench))
        model = {"encoder_type": "transformer", "encoder_layers": 1, "decoder_layers": 1}
        (run / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    md = tmp_path / "RESULTS.md"
    lines = write_report(exp, ["full", "dyn_lang"], [0, 1], 0.5, md, "./run.sh")
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert set(rows) >= {"full", "dyn_lang", "dyn_lang (oracle language)"}
    cells = [c.strip() for c in rows["full"].split("|")[1:-1]]
    assert cells[1] == "2" and cells[2] == "3.0 [2.0, 4.0]"  # mean over seeds, range
    assert cells[4] == "81.0"  # en->X: mean of the directions
    assert "1.50x" in rows["dyn_lang"] and "90.0" in rows["dyn_lang"]
    # whole-model GFLOPs saved: 1 - (0.5 + 0.125) / 2.5 = 75 %; the full arm's 1.25 of 2.5: 50 %
    assert [c.strip() for c in rows["dyn_lang"].split("|")[1:-1]][10] == "75.0"
    assert cells[10] == "50.0"
    # counted as the beam search runs the decoder: 1 - 2 x 0.5 / 5 = 80 %; full: 1 - 2 / 5
    assert [c.strip() for c in rows["dyn_lang"].split("|")[1:-1]][11] == "80.0"
    assert cells[11] == "60.0"
    assert (tmp_path / "gates_dyn_lang.png").stat().st_size > 0
    text = md.read_text()
    assert (
        "./run.sh" in text and "![gate usage of dyn_lang per language](gates_dyn_lang.png)" in text
    )


def test_gate_usage_averages_ffn_channel_groups():
    cfg = {"encoder_type": "transformer", "encoder_layers": 2, "decoder_layers": 1,
           "gate_ffn_groups": 2}  # fmt: skip
    # encoder layer: attn, ffn.0, ffn.1; decoder layer: self_attn, cross_attn, ffn.0, ffn.1
    rows = ["110" + "011" + "1110", "100" + "111" + "1100"]
    labels, grid = gate_usage(cfg, rows)
    assert labels == ["enc attn", "enc ffn", "dec self_attn", "dec cross_attn", "dec ffn"]
    assert grid[0] == [1.0, 0.5] and grid[1] == [0.25, 1.0]
    assert grid[2][0] == 1.0 and grid[3][0] == 1.0 and grid[4][0] == 0.25
    assert grid[4][1] != grid[4][1]  # no decoder layer 1: NaN


def test_arms_runner_rejects_unknown_arms_and_missing_inputs(capsys):
    with pytest.raises(SystemExit):
        prune_arms.main(["report", "--exp", "x", "--arms", "full,dyn_accent"])
    assert "unknown arms ['dyn_accent']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prune_arms.main(["decode", "--exp", "x"])
    assert "needs --test-cuts" in capsys.readouterr().err


def test_kmeans_separates_two_voice_clusters_deterministically():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([1.0, 0.0, 0.0]) + 0.05 * torch.randn(6, 3, generator=g)
    b = torch.tensor([0.0, 1.0, 0.0]) + 0.05 * torch.randn(5, 3, generator=g)
    assign = kmeans(torch.cat([a, b]), 2)
    assert len(set(assign[:6].tolist())) == 1 and len(set(assign[6:].tolist())) == 1
    assert assign[0] != assign[6]
    assert torch.equal(assign, kmeans(torch.cat([a, b]), 2))
    assert kmeans(a[:1], 4).tolist() == [0]  # k is capped by the number of rows


def test_gate_pictures_per_event_and_speaker_group(tmp_path):
    """Event groups come from the cuts' recorded event, speaker groups from k-means of the
    stored d-vectors (a cut without one is "unknown"), and each gets its picture."""
    torch = pytest.importorskip("torch")
    from lhotse import CutSet, MonoCut, Recording

    from speechkit.data.contexts import write_context_store

    run = tmp_path / "exp" / "dyn_spk" / "s0"
    asr = run / "decode_test_seen" / "asr_eng"
    asr.mkdir(parents=True)
    ids = [f"c{i}" for i in range(6)]
    rows = ["10" + "111", "10" + "110", "11" + "111", "11" + "101", "01" + "111", "01" + "011"]
    (asr / "gates.jsonl").write_text(
        "".join(
            json.dumps({"id": c, "enc_gates": r[:2], "dec_gates": r[2:]}) + "\n"
            for c, r in zip(ids, rows)
        )  # fmt: skip
    )
    model = {"encoder_type": "transformer", "encoder_layers": 1, "decoder_layers": 1}
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    events = ["music", "music", "clean", "clean", "noise", None]
    cuts = []
    for c, ev in zip(ids, events):
        rec = Recording(id=c, sources=[], sampling_rate=16000, num_samples=16000, duration=1.0)
        cuts.append(MonoCut(id=c, start=0, duration=1.0, channel=0, recording=rec,
                            custom={"event": ev} if ev else None))  # fmt: skip
    cuts_path = tmp_path / "cuts_test_seen.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(cuts_path)
    groups = event_groups(cuts_path, set(ids))
    assert groups == {"music": ["c0", "c1"], "clean": ["c2", "c3"], "noise": ["c4"]}

    ctx = tmp_path / "contexts"
    vectors = torch.tensor([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1], [1, 0], [0, 0]])
    valid = torch.tensor([True] * 5 + [False])
    write_context_store(ctx, "speaker", ids, vectors, valid)
    spk = speaker_groups(ctx, set(ids), k=2)
    assert spk["unknown"] == ["c5"]
    named = sorted(sorted(v) for k, v in spk.items() if k != "unknown")
    assert named == [["c0", "c1", "c4"], ["c2", "c3"]]
    assert speaker_groups(tmp_path / "none", set(ids)) == {}

    written = gate_pictures(run, tmp_path, "dyn_spk", cuts_path, ctx)
    assert written == ["gates_dyn_spk.png", "gates_dyn_spk_event.png", "gates_dyn_spk_speaker.png"]
    assert all((tmp_path / w).stat().st_size > 0 for w in written)
    # without the manifest and contexts: the language picture only
    (tmp_path / "lang").mkdir()
    assert gate_pictures(run, tmp_path / "lang", "dyn_spk") == ["gates_dyn_spk.png"]


def test_report_of_a_second_budget_reads_tagged_decodes_and_the_untagged_full_arm(tmp_path):
    exp = tmp_path / "exp"
    _decode_dir(exp / "full" / "s0" / "decode_test_seen", 2.0, 80.0, 1.0)
    run = exp / "dyn" / "s0"
    _decode_dir(run / "decode_test_seen", 3.0, 78.0, 0.6)
    _decode_dir(run / "decode_test_seen_b0.4", 5.0, 70.0, 0.4)
    model = {"encoder_type": "transformer", "encoder_layers": 1, "decoder_layers": 1}
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    md = tmp_path / "RESULTS.md"
    lines = write_report(exp, ["full", "dyn"], [0], 0.4, md, "cmd", tag="_b0.4", title="At 0.4")
    rows = {
        line.split("|")[1].strip(): line.split("|")[3].strip()
        for line in lines
        if line.startswith("| ")
    }
    assert rows["full"] == "2.0" and rows["dyn"] == "5.0"
    assert "## At 0.4" in md.read_text()
    assert (tmp_path / "gates_dyn_b0.4.png").is_file()
