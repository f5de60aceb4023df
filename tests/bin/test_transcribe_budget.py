"""``speechkit transcribe --budget`` on a tiny random gated Whisper model: it transcribes at two
budgets, running the decoder modules the gates leave on (the logged sparsity and GFLOPs follow
the budget); a gated model without a budget, a budget out of range and a budget for a model
without gates are clear errors."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkit.bin import cli
from speechkit.config import to_dict
from speechkit.models.gated_whisper import GatedWhisperConfig, GatedWhisperModel
from speechkit.pretrained import load_pretrained, save_pretrained

pytest.importorskip("tokenizers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from whisper_fakes import write_tiny_whisper  # noqa: E402

GATES_LOG = re.compile(
    r"gates at budget ([\d.]+): decoder GFLOPs per window ([\d.e+-]+) \(([\d.e+-]+) without "
    r"gates\), sparsity ([\d.]+), (\d+) windows"
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A plain tiny Whisper and the same weights with a fresh gate predictor. Its budget prior
    (``gate_budget_gain`` 2: each gate's "on" logit gets 2 * logit(budget)) turns every decoder
    gate off at budget 0.1 and leaves every one on at 0.9, whatever the random audio."""
    root = tmp_path_factory.mktemp("transcribe_budget")
    plain = write_tiny_whisper(root / "plain", n_text_layer=2)
    pre = load_pretrained(plain)
    cfg = GatedWhisperConfig(**to_dict(pre.config), gate_budget_gain=2.0)
    model = GatedWhisperModel(cfg)
    missing, unexpected = model.load_state_dict(pre.model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("predictor.") for k in missing)
    gated = save_pretrained(model, pre.tokenizer, pre.features, root / "gated", source="test")
    rng = np.random.default_rng(0)
    wavs = []
    for i, seconds in enumerate((0.6, 1.1)):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(root / f"a{i}.wav", wave.astype(np.float32), 16000)
        wavs.append(str(root / f"a{i}.wav"))
    return plain, gated, wavs


def _transcribe(model, wavs, *extra) -> int:
    return cli.main(["transcribe", "--model", str(model), *wavs, "--language", "en",
                     "--beam", "1", *extra])  # fmt: skip


def test_a_gated_whisper_transcribes_at_two_budgets(models, capsys, caplog):
    _, gated, wavs = models
    found = {}
    for budget in ("0.1", "0.9"):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert _transcribe(gated, wavs, "--budget", budget) == 0
        printed = capsys.readouterr().out.strip().splitlines()
        assert [line.split("\t")[0] for line in printed] == wavs
        m = GATES_LOG.search(caplog.text)
        assert m, caplog.text
        found[budget] = [float(x) for x in m.groups()]
    low, high = found["0.1"], found["0.9"]
    assert low[0] == 0.1 and high[0] == 0.9
    assert low[4] == high[4] == 2  # one window per input
    assert low[3] == pytest.approx(1.0) and high[3] == pytest.approx(0.0)  # sparsity
    assert low[1] < high[1] == pytest.approx(high[2])  # decoder GFLOPs: gated < full


def test_budget_errors_are_clear(models, capsys):
    plain, gated, wavs = models
    for model, extra, why in [
        (gated, [], f"{gated} is a gated model: give --budget (in [0, 1])"),
        (gated, ["--budget", "1.5"], "--budget must lie in [0, 1] (the fraction of the gated "
                                     "modules' FLOPs to keep), got 1.5"),
        (plain, ["--budget", "0.5"], f"--budget: {plain} has no gates (train one with task:"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as err:
            _transcribe(model, wavs, *extra)
        assert err.value.code == 2
        message = capsys.readouterr().err
        assert why in message, message
    assert _transcribe(plain, wavs) == 0  # without --budget the plain model transcribes
