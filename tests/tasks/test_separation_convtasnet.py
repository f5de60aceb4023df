"""The Conv-TasNet baseline (asteroid): its config guard, the slot a class query picks, a few
training steps through ``speechkit.bin.train`` and the SI-SDRi bench scoring it on class
queries only. Skipped where asteroid is not installed (it is optional: --no-deps install)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from mixture_fakes import make_corpus  # noqa: E402

from speechkit.config import ConfigError, from_dict  # noqa: E402
from speechkit.data.mixtures import MixtureConfig, make_mixtures  # noqa: E402
from speechkit.tasks.separation import ConvTasNetTaskConfig  # noqa: E402

CONFIG = ("task: separation_convtasnet\nmodel: {n_filters: 16, kernel_size: 32, stride: 16, "
          "bn_chan: 8, hid_chan: 16, skip_chan: 8, n_blocks: 2, n_repeats: 1}\n"
          "data: {arm: supervised, max_duration: 8.0, segment_seconds: 1.0, "
          "query_weights: {class: 1.0}}\n"
          "trainer: {max_steps: 3, max_epochs: 5, valid_every_steps: 3, log_every_steps: 1, "
          "device: cpu, num_threads: 1, amp: 'off', average_best: 1}\n")  # fmt: skip


def _asteroid():
    return pytest.importorskip(
        "asteroid.models",
        reason="asteroid is optional (pip install --no-deps asteroid asteroid-filterbanks)",
    )


def test_config_takes_class_queries_only():
    cfg = from_dict(ConvTasNetTaskConfig, {"task": "separation_convtasnet"})
    assert cfg.data.query_weights == {"class": 1.0}
    with pytest.raises(ConfigError, match="class queries only"):
        from_dict(ConvTasNetTaskConfig, {"task": "separation_convtasnet",
                                         "data": {"query_weights": {"class": 1, "speaker": 1}}})  # fmt: skip
    with pytest.raises(ConfigError, match="start with 'speech'"):
        from_dict(ConvTasNetTaskConfig, {"model": {"class_names": ["noise", "speech"]}})


def test_class_query_picks_the_slot_and_other_queries_are_refused():
    _asteroid()
    from speechkit.models.convtasnet_baseline import ConvTasNetBaseline, ConvTasNetBaselineConfig

    torch.manual_seed(0)
    model = ConvTasNetBaseline(ConvTasNetBaselineConfig(n_filters=16, bn_chan=8, hid_chan=16,
                                                        skip_chan=8, n_blocks=2, n_repeats=1))  # fmt: skip
    model.eval()
    mix = torch.randn(2, 8000)
    text, spk = torch.zeros(2, 384), torch.zeros(2, 256)
    with torch.no_grad():
        both = model.separate(mix)
        est = model(mix, torch.zeros(2, dtype=torch.long),
                    torch.tensor([model.class_index("speech"), model.class_index("music")]),
                    text, spk)  # fmt: skip
    assert both.shape == (2, 2, 8000) and est.shape == (2, 8000)
    torch.testing.assert_close(est[0], both[0, 0])
    torch.testing.assert_close(est[1], both[1, 1])
    assert not torch.allclose(both[0, 0], both[0, 1])
    with pytest.raises(ValueError, match="class queries only"):
        model(mix, torch.tensor([0, 2]), torch.zeros(2, dtype=torch.long), text, spk)
    with pytest.raises(ValueError, match="unknown query class 'dog'"):
        model.class_index("dog")


def test_trains_through_the_cli_and_the_bench_scores_class_queries(tmp_path):
    _asteroid()
    from speechkit.bench.separation import main as bench
    from speechkit.bin.train import main as train
    from speechkit.separate import load_trained

    make_corpus(tmp_path / "corpus")
    make_mixtures(MixtureConfig(str(tmp_path / "corpus"), str(tmp_path / "mix"),
                                per_utterance={"train": 2, "dev": 1}, speaker_share=0.3))  # fmt: skip
    (tmp_path / "ctn.yaml").write_text(CONFIG)
    mix, out = tmp_path / "mix", tmp_path / "ctn"
    assert train(["--config", str(tmp_path / "ctn.yaml"), "--train-cuts",
                  str(mix / "cuts_train.jsonl.gz"), "--dev-cuts", str(mix / "cuts_dev.jsonl.gz"),
                  "--out", str(out)]) == 0  # fmt: skip
    model = load_trained(out, ("separator", "convtasnet"))
    assert model.cfg.n_filters == 16
    with pytest.raises(ValueError, match="not a separator"):
        load_trained(out, "separator")
    results = tmp_path / "RESULTS.md"
    assert bench(["--model", f"ctn={out}", "--cuts", str(mix / "cuts_dev.jsonl.gz"),
                  "--results-md", str(results)]) == 0  # fmt: skip
    rows = [line.split(" | ")[1] for line in results.read_text().splitlines()
            if line.startswith("| ctn | ") and line.count("|") == 9]  # fmt: skip
    # background mixtures: speech or the background by class; no text or speaker queries
    assert sorted(rows) == ["class: background", "class: speech"]
