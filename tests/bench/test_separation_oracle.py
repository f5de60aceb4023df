"""Oracle masks of the separation bench: their definitions on known spectra, and the rows that
``python -m speechkit.bench.separation --oracle ...`` writes for test mixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from mixture_fakes import make_corpus  # noqa: E402

from speechkit.bench.separation import main, oracle_mask  # noqa: E402
from speechkit.data.mixtures import MixtureConfig, make_mixtures  # noqa: E402


def test_masks_on_known_spectra():
    target = torch.tensor([[3.0 + 0j, 1.0 + 0j, 0j, 2j]])
    other = torch.tensor([[4.0 + 0j, -3.0 + 0j, 1.0 + 0j, 2j]])
    irm = oracle_mask(target, other, "irm")
    torch.testing.assert_close(irm, torch.tensor([[0.6, 10**-0.5, 0.0, 2**-0.5]]))
    # bin 1: the target is in opposite phase to the mixture, so the PSM drops it (the IRM not)
    psm = oracle_mask(target, other, "psm")
    torch.testing.assert_close(psm, torch.tensor([[3 / 7, 0.0, 0.0, 0.5]]))
    ibm = oracle_mask(target, other, "ibm")
    torch.testing.assert_close(ibm, torch.tensor([[0.0, 0.0, 0.0, 0.0]]))
    assert oracle_mask(other, target, "ibm").tolist() == [[1.0, 1.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="unknown oracle mask 'wiener'"):
        oracle_mask(target, other, "wiener")


@pytest.fixture(scope="module")
def mixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    make_corpus(root / "corpus")
    make_mixtures(MixtureConfig(str(root / "corpus"), str(root / "mix"),
                                per_utterance={"train": 1, "dev": 1, "test": 2},
                                speaker_share=0.3))  # fmt: skip
    return root / "mix" / "cuts_test.jsonl.gz"


def test_oracle_rows_without_a_model(mixtures, tmp_path):
    results = tmp_path / "RESULTS.md"
    assert main(["--cuts", str(mixtures), "--oracle", "irm", "--oracle", "ibm",
                 "--oracle-stft", "256/64", "--results-md", str(results)]) == 0  # fmt: skip
    rows = {}
    for line in results.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith("oracle"):
            rows[(cells[0], cells[1])] = float(cells[-2])
    assert {name for name, _ in rows} == {"oracle IRM 256/64", "oracle IBM 256/64"}
    # the sources are known, so every oracle pulls its target out: by several dB from a
    # background, by less from a second fake voice whose harmonics overlap the first's
    assert {q for _, q in rows} == {"class: speech", "class: background", "enrolled speaker"}
    floor = {"class: speech": 5.0, "class: background": 5.0, "enrolled speaker": 0.5}
    assert all(gain > floor[q] for (_, q), gain in rows.items()), rows
    assert "RTF" not in results.read_text()  # no model, no speed table


def test_bad_arguments_are_refused(mixtures, capsys):
    with pytest.raises(SystemExit):
        main(["--cuts", str(mixtures)])
    assert "--model NAME=DIR or --oracle MASK" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cuts", str(mixtures), "--oracle", "irm", "--oracle-stft", "128/256"])
    assert "0 < HOP <= N_FFT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cuts", str(mixtures), "--oracle", "irm", "--wer-model", "whisper-tiny.en"])
    assert "--wer-model needs a --model" in capsys.readouterr().err
