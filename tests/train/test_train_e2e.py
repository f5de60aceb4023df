"""End to end: speechkit.bin.train on a tiny tone corpus with the real model and data pipeline."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from speechkit.bin import average_checkpoints as average_bin
from speechkit.bin import pack_model as pack_bin
from speechkit.bin import train as train_bin
from speechkit.config import ConfigError
from speechkit.pretrained import load_pretrained
from speechkit.text.sentencepiece import SentencePieceTokenizer
from speechkit.train.checkpoint import list_checkpoints, load_checkpoint


def run(corpus, out, *overrides, resume=False):
    argv = [
        "--config",
        str(corpus["config"]),
        "--train-cuts",
        str(corpus["train"]),
        "--dev-cuts",
        str(corpus["dev"]),
        "--tokenizer",
        str(corpus["tokenizer"]),
        "--out",
        str(out),
        "--set",
        *overrides,
    ]
    return train_bin.main(argv + (["--resume"] if resume else []))


def test_train_resume_average_and_load(tiny_corpus, tmp_path):
    out = tmp_path / "exp"
    assert run(tiny_corpus, out, "trainer.max_steps=2") == 0
    vocab = SentencePieceTokenizer.load(tiny_corpus["tokenizer"]).vocab_size
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["vocab_size"] == vocab
    ckpt = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    assert ckpt["step"] == 2 and ckpt["valid_loss"] is not None
    assert ckpt["config"]["model"]["vocab_size"] == vocab

    assert run(tiny_corpus, out, "trainer.max_steps=4", resume=True) == 0
    assert list_checkpoints(out / "checkpoints")[-1].name == "step-4.pt"
    with open(out / "train_log.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]

    avg = load_checkpoint(out / "model_avg.pt")
    assert len(avg["averaged_from"]) == 2 and "optimizers" not in avg
    pretrained = load_pretrained(out / "model_avg.pt")
    assert not pretrained.model.training and pretrained.features.n_mels == 20
    feats, lens = torch.randn(1, 50, 20), torch.tensor([50])
    enc, _enc_lens = pretrained.model.encode(feats, lens)
    assert torch.isfinite(enc).all() and enc.shape[0] == 1

    assert (
        average_bin.main(["--exp", str(out), "--best", "1", "--out", str(tmp_path / "b.pt")]) == 0
    )
    assert len(load_checkpoint(tmp_path / "b.pt")["averaged_from"]) == 1
    assert pack_bin.main(["--checkpoint", str(out / "model_avg.pt"), "--out", str(out / "pk")]) == 0
    packed = load_pretrained(out / "pk")
    with torch.no_grad():
        torch.testing.assert_close(packed.model.encode(feats, lens)[0], enc, rtol=0, atol=0)


@pytest.mark.parametrize("encoder", ["transformer", "ebranchformer"])
def test_bf16_mixed_precision_with_the_real_model(tiny_corpus, tmp_path, encoder):
    """The whole model (CTC, label-smoothed CE, attention) trains under bf16 autocast on CPU,
    the path a GPU takes with trainer.amp=auto; losses stay finite, weights fp32."""
    out = tmp_path / "exp"
    overrides = ["trainer.max_steps=3", "trainer.amp=bf16", f"model.encoder_type={encoder}"]
    assert run(tiny_corpus, out, *overrides) == 0
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert all(
        torch.isfinite(torch.tensor(float(r[k]))) for r in rows for k in ("loss", "loss_ctc")
    )
    ckpt = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    assert ckpt["valid_loss"] is not None and ckpt["valid_loss"] == ckpt["valid_loss"]  # not NaN
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values() if t.is_floating_point())


def test_resume_with_changed_model_is_refused(tiny_corpus, tmp_path):
    out = tmp_path / "exp"
    assert run(tiny_corpus, out, "trainer.max_steps=1") == 0
    with pytest.raises(ConfigError, match="model.d_model"):
        run(tiny_corpus, out, "trainer.max_steps=2", "model.d_model=16", resume=True)


def test_vocab_size_that_contradicts_the_tokenizer_is_an_error(tiny_corpus, tmp_path, capsys):
    with pytest.raises(SystemExit):  # the message names the key, on stderr
        run(tiny_corpus, tmp_path / "exp", "model.vocab_size=7")
    assert "model.vocab_size is 7" in capsys.readouterr().err


def test_repeated_set_flags_accumulate():
    from speechkit.bin.train import build_parser

    args = build_parser().parse_args(
        ["--config", "c.yaml", "--train-cuts", "a", "--tokenizer", "t", "--out", "o"]
        + ["--set", "optim.lr=1", "--set", "model.d_model=8", "trainer.seed=3"]
    )
    assert args.overrides == ["optim.lr=1", "model.d_model=8", "trainer.seed=3"]
