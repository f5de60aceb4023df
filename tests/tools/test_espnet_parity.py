"""tools/espnet_parity.py: an OWSM-shaped ESPnet model through the zoo, compared with ESPnet."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest
import sentencepiece as spm

pytest.importorskip("espnet2")

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "espnet_parity.py"


def _script():
    spec = importlib.util.spec_from_file_location("espnet_parity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_owsm_token_list_order():
    tool = _script()
    texts = ["where is the station", "wo ist der bahnhof"] * 20
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=proto, vocab_size=30,
        hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    tokens = tool.owsm_tokens(spm.SentencePieceProcessor(model_proto=proto.getvalue()), texts)
    assert tokens[:4] == ["<blank>", "<unk>", "<na>", "<nospeech>"]
    assert tokens[-3:] == ["<sos>", "<eos>", "<sop>"]
    first = tokens.index("<0.00>")
    assert tokens[first - 1] == "<notimestamps>" and tokens[first + 1500] == "<30.00>"
    assert len(tokens) == len(set(tokens))


def test_tiny_owsm_through_the_zoo_matches_espnet(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other\n\nkept\n")
    argv = ["--size", "tiny", "--work-dir", str(tmp_path / "w"), "--results-md", str(results)]
    assert _script().main(argv) == 0
    text = results.read_text()
    assert "kept" in text and "## OWSM v3.1 architecture" in text
    rows = [r for r in text.splitlines() if r.startswith("| ") and "---" not in r][1:]
    checks = [r for r in rows if "yardstick" not in r]
    assert len(checks) == 8 and all(
        r.split("|")[-2].strip() in ("yes", "identical") for r in checks
    )
    # the zoo fetched what meta.yaml and the config name, nothing else
    repo = tmp_path / "w" / "hub" / "espnet" / "owsm_v3.1_ebf_base"
    assert "`meta.yaml`" in text and "`data/token_list/bpe_unigram50000/bpe.model`" in text
    assert (repo / "meta.yaml").exists()
    assert text.count(".pth`") == 1 and text.count("config.yaml`") == 1


def test_a_wrong_conversion_is_reported(tmp_path, monkeypatch):
    """A converter that swapped two encoder weights must fail the check (exit 1)."""
    import speechkit.convert.espnet as conv

    tool = _script()
    original = conv.espnet_key_map

    def swapped(cfg):
        pairs = original(cfg)
        i = next(k for k, (ours, _) in enumerate(pairs) if ours.endswith("attn.q_proj"))
        j = next(k for k, (ours, _) in enumerate(pairs) if ours.endswith("attn.k_proj"))
        pairs[i], pairs[j] = (pairs[i][0], pairs[j][1]), (pairs[j][0], pairs[i][1])
        return pairs

    monkeypatch.setattr(conv, "espnet_key_map", swapped)
    argv = ["--size", "tiny", "--work-dir", str(tmp_path / "w"), "--weight-noise", "0.1"]
    assert tool.main(argv) == 1
