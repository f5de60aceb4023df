"""Fine-tuning an imported OWSM model with ``speechkit.bin.train --init``, then decoding it.

The OWSM model is a tiny fake ESPnet directory (``espnet_fakes``, no ESPnet needed) converted to
a packed speechkit model; it is fine-tuned a few steps on a tiny cut set.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from lhotse import CutSet, Recording, SupervisionSegment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "convert"))
import espnet_fakes as ef  # noqa: E402

from speechkit.bin import decode as decode_bin  # noqa: E402
from speechkit.bin import train as train_bin  # noqa: E402
from speechkit.config import ConfigError  # noqa: E402
from speechkit.convert.espnet import convert_espnet  # noqa: E402
from speechkit.pretrained import load_pretrained  # noqa: E402
from speechkit.tasks.s2t import with_pretrained  # noqa: E402
from speechkit.text.espnet import EspnetTokenizer  # noqa: E402
from speechkit.train.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from speechkit.train.config import load_experiment_config  # noqa: E402

CONF = Path(__file__).resolve().parents[2] / "conf" / "s2t" / "owsm_finetune.yaml"
SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "hello world how are you"]


def _cuts(directory: Path, n: int = 6) -> Path:
    cuts = []
    for i in range(n):
        t = np.arange(int(16000 * (0.5 + 0.1 * (i % 3)))) / 16000
        path = directory / f"utt{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * (250 + 60 * i) * t)).astype(np.float32), 16000)
        cut = Recording.from_file(path, recording_id=f"rec{i}").to_cut()
        cut.supervisions = [
            SupervisionSegment(f"sup{i}", f"rec{i}", 0.0, cut.duration, language="eng",
                               text=SENTENCES[i % 3], speaker=f"spk{i % 2}")
        ]  # fmt: skip
        cuts.append(cut)
    out = directory / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(out)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    ef.write_fake_espnet_dir(root / "esp")
    packed = convert_espnet(root / "esp", root / "packed")
    return {"packed": packed, "cuts": _cuts(root), "root": root}


OVERRIDES = [
    "trainer.max_steps=3", "trainer.device=cpu", "trainer.average_best=1",
    "trainer.log_every_steps=1", "optim.warmup_steps=1", "optim.lr=0.001",
    "data.asr_languages=[eng]", "data.st_directions=[]", "data.specaug.enabled=false",
    "data.sampler.max_duration=2.0", "data.sampler.max_cut_duration=2.0",
    "data.sampler.num_buckets=2", "data.num_workers=0",
    "data.max_target_tokens=20",
]  # fmt: skip


def test_finetune_from_imported_owsm_then_decode(setup, caplog):
    out = setup["root"] / "exp"
    before = load_pretrained(setup["packed"])
    argv = ["--config", str(CONF), "--init", str(setup["packed"]), "--train-cuts",
            str(setup["cuts"]), "--dev-cuts", str(setup["cuts"]), "--out", str(out),
            "--set", *OVERRIDES]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="speechkit"):
        assert train_bin.main(argv) == 0
    assert "--init" in caplog.text and "model section replaced" in caplog.text

    # The run's config is the imported model's (not the YAML's defaults), features included.
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["d_model"] == before.config.d_model
    assert config["model"]["global_mvn"] is True
    assert config["data"]["features"]["kind"] == "espnet"

    # Checkpoints embed the ESPnet tokenizer; training started from the imported weights.
    ckpt = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    assert ckpt["step"] == 3 and ckpt["tokenizer"]["kind"] == "espnet"
    tuned = load_pretrained(out / "model_avg.pt")
    assert isinstance(tuned.tokenizer, EspnetTokenizer)
    assert tuned.tokenizer.token_list == before.tokenizer.token_list
    ref, new = before.model.state_dict(), tuned.model.state_dict()
    torch.testing.assert_close(new["encoder.mvn.mean"], ref["encoder.mvn.mean"])
    moved = [k for k in ref if ref[k].is_floating_point() and not torch.equal(ref[k], new[k])]
    assert moved  # trained ...
    drift = max((new[k] - ref[k]).abs().max().item() for k in moved)
    assert drift < 0.05  # ... a few small steps from the imported weights, not from scratch

    dec = setup["root"] / "decode"
    assert decode_bin.main(["--model", str(out / "model_avg.pt"), "--cuts", str(setup["cuts"]),
                            "--out", str(dec), "--beam-size", "2", "--ctc-weight", "0.3",
                            "--max-len", "8", "--device", "cpu"]) == 0  # fmt: skip
    lines = [json.loads(x) for x in (dec / "asr_eng" / "hyps.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all(isinstance(x["hyp"], str) for x in lines)
    assert {x["ref"] for x in lines} == set(SENTENCES)


def test_tokenizer_or_init_is_required(setup, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_bin.main(["--config", str(CONF), "--train-cuts", "x", "--out", str(tmp_path)])
    assert "needs --tokenizer DIR or --init MODEL" in capsys.readouterr().err
    args = train_bin.build_parser().parse_args(
        ["--config", str(CONF), "--train-cuts", "x", "--out", "o", "--init", "owsm-v3.1-ebf-base"]
    )
    assert args.init == "owsm-v3.1-ebf-base" and args.tokenizer is None


def test_model_overrides_apply_to_the_pretrained_config(setup):
    pretrained = load_pretrained(setup["packed"])
    cfg = load_experiment_config(str(CONF), [])
    tuned = with_pretrained(
        cfg, pretrained, "packed", ["model.dropout=0.25", "optim.lr=0.1", "model.ctc_weight=0.7"]
    )
    assert tuned.model.dropout == 0.25 and tuned.model.ctc_weight == 0.7
    assert tuned.model.d_model == pretrained.config.d_model  # the rest is the pretrained model's
    with pytest.raises(ConfigError, match="no_such_key"):
        with_pretrained(cfg, pretrained, "packed", ["model.no_such_key=1"])
