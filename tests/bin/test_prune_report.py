"""speechkit prune-arms report: the arms' scores, GFLOPs, sparsity and speed in one table, means
over seeds with their range, an oracle-language row for the language arms, and gate pictures."""

from __future__ import annotations

import json

import pytest
import yaml

from speechkit.bin import prune_arms
from speechkit.bin.prune_report import gate_usage, write_report


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
        gates = {"gflops_enc": gflops, "gflops_dec": gflops / 4, "sparsity": 0.45}
        if lid is not None:
            gates["lid_accuracy"] = lid
    (d / "decode_stats.json").write_text(json.dumps({"gates": gates}))
    asr = d / "asr_eng"
    asr.mkdir()
    (asr / "gates.jsonl").write_text(
        json.dumps({"enc_gates": "10", "dec_gates": "011"}) + "\n"
        + json.dumps({"enc_gates": "11", "dec_gates": "001"}) + "\n"
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
    assert (tmp_path / "gates_dyn_lang.png").stat().st_size > 0
    text = md.read_text()
    assert "./run.sh" in text and "gates_dyn_lang.png" in text


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
