"""Oracle masks of the separation bench: their definitions on known spectra, and the rows that
``python -m speechkit.bench.separation --oracle ...`` writes for test mixtures; the downstream
WER rows (front end, remix, oracle mask) on a stand-in recogniser."""

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
        main(["--cuts", str(mixtures), "--wer-model", "whisper-tiny.en"])
    assert "--model NAME=DIR or --oracle MASK" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cuts", str(mixtures), "--oracle", "irm", "--wer-model", "whisper-tiny.en",
              "--wer-remix", "-0.5"])  # fmt: skip
    assert "--wer-remix: give shares in [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--cuts", str(mixtures), "--oracle", "irm", "--wer-model", "whisper-tiny.en",
              "--wer-beam", "0"])  # fmt: skip
    assert "--wer-beam must be >= 1" in capsys.readouterr().err


class _Recogniser:
    """Stands in for Whisper: a wave whose SI-SDR against the nearest clean test utterance is at
    least 3 dB is heard right, anything noisier as one wrong word. So the WER rows show what the
    bench feeds the recogniser, not how good a recogniser is."""

    def __init__(self, cuts) -> None:
        from speechkit.data.mixtures import load_mixture

        self.known = [(load_mixture(c)[1], c.supervisions[0].text) for c in cuts]

    def __call__(self, waves):
        from types import SimpleNamespace

        from speechkit.bench.separation import _sisdr

        out = []
        for w in waves:
            sdr, text = max((_sisdr(w, s), t) for s, t in self.known if len(s) == len(w))
            out.append(SimpleNamespace(text=text if sdr >= 3.0 else "noise"))
        return out


def test_wer_rows_feed_the_front_end_the_remix_and_the_oracle(tmp_path, monkeypatch):
    from lhotse import CutSet

    from speechkit.checkpoint import save_checkpoint
    from speechkit.config import to_dict
    from speechkit.inference import Transcriber
    from speechkit.models.separation import Separator, SeparatorConfig

    make_corpus(tmp_path / "corpus")
    make_mixtures(MixtureConfig(str(tmp_path / "corpus"), str(tmp_path / "mix"),
                                per_utterance={"train": 1, "dev": 1, "test": 2},
                                snr_min_db=-5.0, snr_max_db=-1.0, speaker_share=0.0))  # fmt: skip
    cuts_path = tmp_path / "mix" / "cuts_test.jsonl.gz"
    monkeypatch.setattr(
        Transcriber, "load", lambda *a, **k: _Recogniser(CutSet.from_file(cuts_path))
    )
    torch.manual_seed(0)
    sep = Separator(SeparatorConfig(channels=8, hidden=8, query_dim=4, dilations=[1], stacks=1))
    save_checkpoint({"model": sep.state_dict(),
                     "config": {"model_type": "separator", "model": to_dict(sep.cfg)}},
                    tmp_path / "sep" / "model_avg.pt")  # fmt: skip
    results = tmp_path / "RESULTS.md"
    assert main(["--cuts", str(cuts_path), "--model", f"untrained={tmp_path / 'sep'}",
                 "--oracle", "irm", "--wer-model", "whisper-tiny.en", "--wer-remix", "0", "1",
                 "--results-md", str(results)]) == 0  # fmt: skip
    wer = {}
    for line in results.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith(("noisy", "clean")):
            wer[cells[0]] = float(cells[2].split()[0])
    n = len([c for c in CutSet.from_file(cuts_path) if c.custom["event"] != "speaker"])
    # "utt i" heard as "noise": one substitution and one deletion per utterance
    assert f"| noisy, no front end | {n} | 100.0 ({n}s/{n}d/0i) | - |" in results.read_text()
    assert wer["noisy, front end, remix 1"] == wer["noisy, no front end"]  # the input itself
    # the oracle mask lifts most mixtures over 3 dB (the rest share the voice's harmonics)
    assert wer["noisy, oracle IRM mask (ceiling)"] < 50.0
    assert "| noisy, oracle IRM mask (ceiling) | " in results.read_text()
    assert wer["clean speech, no front end"] == 0.0
    assert wer["clean speech, front end, remix 1"] == 0.0
    assert set(wer) == {"noisy, no front end", "noisy, front end, remix 0",
                        "noisy, front end, remix 1", "noisy, oracle IRM mask (ceiling)",
                        "clean speech, no front end", "clean speech, front end, remix 0",
                        "clean speech, front end, remix 1"}  # fmt: skip
