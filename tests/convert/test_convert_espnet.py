"""ESPnet S2T (OWSM) import, checked against ESPnet's own implementation.

ESPnet's model is built from small configs (E-Branchformer and Transformer encoders) with random
weights and saved in the OWSM hub layout; the converted speechkit model must give the same
features + encoder output, decoder logits, CTC posteriors, and the same beam-search tokens as
``espnet2.bin.s2t_inference.Speech2Text``.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("espnet2")

import espnet_fakes as ef  # noqa: E402

from speechkit.convert.common import ConversionError  # noqa: E402
from speechkit.convert.espnet import convert_espnet  # noqa: E402
from speechkit.data.features import LogMel  # noqa: E402
from speechkit.decode import DecodeOptions, SpecialIds, beam_search  # noqa: E402
from speechkit.pretrained import load_pretrained  # noqa: E402

ATOL = 1e-4


def _wave(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A (S,) test signal: two tones with a rising envelope plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    tone = torch.sin(2 * math.pi * 440 * t) + 0.5 * torch.sin(2 * math.pi * 1250 * t)
    return (0.3 * tone * t + 0.05 * torch.randn(t.shape, generator=g)).float()


@pytest.fixture(scope="module", params=["e_branchformer", "transformer"])
def pair(request, tmp_path_factory):
    """(ESPnet model, its directory, the converted speechkit Pretrained)."""
    root = tmp_path_factory.mktemp(request.param)
    # Fitted briefly to one utterance, so beam searches meet a peaked model (espnet_fakes.fit);
    # 20 steps suffice now that the search follows ESPnet's rules exactly (stop="espnet").
    esp, _, _ = ef.write_espnet_dir(
        root, request.param, seed=1, fit_waves=[_wave(seed=5)], steps=20
    )
    packed = convert_espnet(root, root / "packed")
    return esp, root, load_pretrained(packed)


def _both_encode(esp, sk, wave):
    speech, lens = wave[None], torch.tensor([wave.numel()])
    with torch.no_grad():
        enc_e, enc_lens_e = esp.encode(speech, lens)
        feats, feat_lens = LogMel(sk.features)(speech, lens)
        enc_s, enc_lens_s = sk.model.encode(feats, feat_lens)
    return enc_e, enc_lens_e, enc_s, enc_lens_s


def test_encoder_and_ctc_match_espnet(pair):
    esp, _, sk = pair
    enc_e, lens_e, enc_s, lens_s = _both_encode(esp, sk, _wave())
    assert lens_e.tolist() == lens_s.tolist()
    assert enc_s.shape == enc_e.shape
    torch.testing.assert_close(enc_s, enc_e, atol=ATOL, rtol=1e-4)
    with torch.no_grad():
        ctc_e = esp.ctc.log_softmax(enc_e)
        ctc_s = sk.model.ctc_log_probs(enc_s)
    torch.testing.assert_close(ctc_s, ctc_e, atol=ATOL, rtol=1e-4)


def test_decoder_logits_match_espnet(pair):
    esp, _, sk = pair
    tok = sk.tokenizer
    enc_e, lens_e, enc_s, lens_s = _both_encode(esp, sk, _wave(seed=3))
    ys = torch.tensor([tok.sot_sequence("eng", "asr") + tok.encode("the cat sat")])
    with torch.no_grad():
        logits_e, _ = esp.decoder(enc_e, lens_e, ys, torch.tensor([ys.size(1)]))
        logits_s = sk.model.decode(ys, enc_s, lens_s)
    torch.testing.assert_close(logits_s, logits_e, atol=ATOL, rtol=1e-4)
    # ESPnet's special ids are its own: <sos>/<eos> sit at the end of the token list.
    assert (esp.sos, esp.eos, esp.blank_id) == (tok.sos_id, tok.eos_id, tok.blank_id)


def _espnet_beam(root, wave, beam, ctc_weight, monkeypatch, maxlenratio=0.5):
    from espnet2.bin.s2t_inference import Speech2Text

    monkeypatch.chdir(root)  # the config names bpe.model and the stats file relative to it
    # With CTC keep maxlenratio > 0: ESPnet's CTC scorer indexes past T' on longer hypotheses.
    s2t = Speech2Text(
        s2t_train_config=str(root / ef.EXP / "config.yaml"),
        s2t_model_file=str(root / ef.EXP / "valid.acc.ave_3best.pth"),
        beam_size=beam, ctc_weight=ctc_weight, nbest=1, lang_sym="<eng>", task_sym="<asr>",
        device="cpu", maxlenratio=maxlenratio,
    )  # fmt: skip
    return s2t(wave.numpy())[0][2]  # ids after <sos>, without <eos>: <lang> <task> <nots> ...


@pytest.mark.parametrize("beam, ctc_weight, ratio", [(1, 0.0, 0.5), (3, 0.3, 0.5), (3, 0.0, 0.0)])
def test_beam_search_matches_speech2text(pair, beam, ctc_weight, ratio, monkeypatch):
    esp, root, sk = pair
    tok = sk.tokenizer
    wave = _wave(seed=5)  # exactly Speech2Text's speech_length (1 s): no padding on either side
    theirs = _espnet_beam(root, wave, beam, ctc_weight, monkeypatch, maxlenratio=ratio)
    _, _, enc, enc_lens = _both_encode(esp, sk, wave)
    prefix = torch.tensor([tok.sot_sequence("eng", "asr")])
    # ESPnet's rules: its stop/beam rule and its CTC scorer counting the prompt as emitted;
    # maxlenratio 0 means at most T' tokens and its end detection.
    max_len = int(ratio * int(enc_lens[0])) if ratio else int(enc_lens[0])
    opts = DecodeOptions(
        beam_size=beam, ctc_weight=ctc_weight, ctc_top_k=max(2, int(1.5 * beam)),
        length_norm=False, max_len_ratio=ratio or 10.0, max_len=max_len,
        stop="espnet", ctc_prompt_offset=True, end_detect=ratio == 0,
    )  # fmt: skip
    # ESPnet's Speech2Text suppresses only timestamp tokens when <notimestamps> is given.
    ids = SpecialIds(eos=tok.eos_id, blank=tok.blank_id, suppress=tuple(tok.timestamp_ids))
    ours = beam_search(sk.model, enc, enc_lens, prefix, opts, ids)[0][0].tokens
    assert theirs[:3] == prefix[0, 1:].tolist()
    assert ours == theirs[3:]


# ---- bad input ---------------------------------------------------------------------------


def _edit_config(root, fn):
    path = root / ef.EXP / "config.yaml"
    config = yaml.safe_load(path.read_text())
    fn(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def fake_dir(tmp_path):
    return ef.write_fake_espnet_dir(tmp_path / "esp")


def test_fake_dir_converts_and_keeps_token_order(fake_dir, tmp_path):
    out = convert_espnet(fake_dir, tmp_path / "packed")
    p = load_pretrained(out)
    tokens = yaml.safe_load((fake_dir / ef.EXP / "config.yaml").read_text())["token_list"]
    assert p.tokenizer.token_list == tokens
    assert p.tokenizer.vocab_size == p.config.vocab_size
    stats = np.load(fake_dir / ef.STATS)
    mean = stats["sum"] / stats["count"]
    torch.testing.assert_close(p.model.encoder.mvn.mean, torch.from_numpy(mean).float())
    assert p.features.kind == "espnet" and p.features.win_length == 400


def test_asr_config_is_refused(fake_dir, tmp_path):
    _edit_config(fake_dir, lambda c: c.update(preprocessor="default"))
    with pytest.raises(ConversionError, match="not an ESPnet s2t config.*asr"):
        convert_espnet(fake_dir, tmp_path / "out")


def test_checkpoint_not_matching_config(fake_dir, tmp_path):
    _edit_config(fake_dir, lambda c: c["decoder_conf"].update(num_blocks=3))
    with pytest.raises(ConversionError, match="decoder.decoders.2.*disagree"):
        convert_espnet(fake_dir, tmp_path / "out")
    _edit_config(fake_dir, lambda c: c["decoder_conf"].update(num_blocks=1))
    with pytest.raises(ConversionError, match="no place.*decoder.decoders.1"):
        convert_espnet(fake_dir, tmp_path / "out2")


def test_token_list_disagreeing_with_bpe(fake_dir, tmp_path):
    def corrupt(config):
        config["token_list"][20] = "▁zebra"

    _edit_config(fake_dir, corrupt)
    with pytest.raises(ConversionError, match="not pieces of the BPE model.*zebra"):
        convert_espnet(fake_dir, tmp_path / "out")


def test_unsupported_encoder_option_named(fake_dir, tmp_path):
    _edit_config(fake_dir, lambda c: c["encoder_conf"].update(pos_enc_layer_type="rel_pos"))
    with pytest.raises(ConversionError, match="pos_enc_layer_type"):
        convert_espnet(fake_dir, tmp_path / "out")


def test_output_dir_must_be_new(fake_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        convert_espnet(fake_dir, tmp_path / "busy")
    shutil.rmtree(tmp_path / "busy")


# ---- zoo: an ESPnet hub repo fetched over HTTP and converted ----------------------------


@contextlib.contextmanager
def serve_hub(repo: Path, monkeypatch):
    """Serves the directory ``repo`` as the hub repo ``espnet/tiny`` (speechkit.zoo.local_hub) on
    127.0.0.1, set as HF_ENDPOINT; yields (its commit, the files fetched)."""
    from speechkit.zoo.local_hub import LocalHub

    with LocalHub() as hub:
        commit = hub.publish("espnet/tiny", repo)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("SPEECHKIT_OFFLINE", raising=False)
        fetched: set[str] = set()
        yield commit, fetched
        prefix = f"/espnet/tiny/resolve/{commit}/"
        fetched.update(
            p.removeprefix(prefix) for m, p, _ in hub.requests if m == "GET" and prefix in p
        )


def load_from_registry(entry: dict, tmp_path: Path, monkeypatch):
    from speechkit import zoo

    tmp_path.mkdir(exist_ok=True)
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump({"owsm-tiny": entry}))
    monkeypatch.setenv("SPEECHKIT_ZOO_REGISTRY", str(registry))
    return zoo.load("owsm-tiny", cache_dir=tmp_path / "cache", progress=False)


def espnet_entry(commit: str, **extra) -> dict:
    source = {"kind": "hf", "converter": "espnet", "repo": "espnet/tiny", "revision": commit}
    return {"sources": [source | extra]}


def test_zoo_hf_source_with_espnet_converter(fake_dir, tmp_path, monkeypatch):
    files = [f"{ef.EXP}/config.yaml", f"{ef.EXP}/valid.acc.ave_3best.pth", ef.BPE, ef.STATS]
    with serve_hub(fake_dir, monkeypatch) as (commit, _):
        p = load_from_registry(espnet_entry(commit, hf_files=files), tmp_path, monkeypatch)
    assert p.features.kind == "espnet"
    assert p.tokenizer.time_resolution == pytest.approx(ef.RESOLUTION)
    assert p.tokenizer.sot_sequence("deu", "st_eng")[1] == p.tokenizer.token_id("<deu>")


def test_zoo_espnet_repo_files_come_from_its_meta_yaml(fake_dir, tmp_path, monkeypatch):
    """No file list in the entry: meta.yaml names config and weights (here not the names the
    directory search would pick), the config names the BPE model and the statistics; other
    files in the repo are not fetched."""
    repo = tmp_path / "repo"
    shutil.copytree(fake_dir, repo)
    exp = repo / ef.EXP
    (exp / "valid.acc.ave_3best.pth").rename(exp / "valid.total_count.ave_5best.till45epoch.pth")
    (repo / "unrelated.bin").write_bytes(b"x" * 1000)
    meta = {"espnet": "202511", "files": {"s2t_model_file": f"{ef.EXP}/valid.total_count."
            "ave_5best.till45epoch.pth"}, "yaml_files": {"s2t_train_config":
            f"{ef.EXP}/config.yaml"}}  # fmt: skip
    (repo / "meta.yaml").write_text(yaml.safe_dump(meta))
    direct = convert_espnet(repo, tmp_path / "direct")  # the converter reads meta.yaml too
    with serve_hub(repo, monkeypatch) as (commit, fetched):
        p = load_from_registry(espnet_entry(commit), tmp_path / "z", monkeypatch)
    assert fetched == {"meta.yaml", f"{ef.EXP}/config.yaml", ef.BPE, ef.STATS,
                       f"{ef.EXP}/valid.total_count.ave_5best.till45epoch.pth"}  # fmt: skip
    assert p.tokenizer.token_id("<deu>") == load_pretrained(direct).tokenizer.token_id("<deu>")
    want = torch.load(exp / "valid.total_count.ave_5best.till45epoch.pth", weights_only=True)
    assert torch.equal(p.model.state_dict()["ctc_head.weight"], want["ctc.ctc_lo.weight"])

    # no statistics file on the hub: the checkpoint's normalisation buffers are used
    (repo / ef.STATS).rename(tmp_path / "stats.npz")
    with serve_hub(repo, monkeypatch) as (commit, _):
        p2 = load_from_registry(espnet_entry(commit), tmp_path / "a", monkeypatch)
    for name, tensor in p.model.state_dict().items():  # the fake's buffers hold those stats
        torch.testing.assert_close(p2.model.state_dict()[name], tensor, rtol=0, atol=0)

    # a manifest that names nothing usable, or a path outside the repo: a clear error
    (repo / "meta.yaml").write_text(yaml.safe_dump({"files": {}}))
    with serve_hub(repo, monkeypatch) as (commit, _), pytest.raises(Exception, match="s2t_model"):
        load_from_registry(espnet_entry(commit), tmp_path / "b", monkeypatch)
    meta["files"]["s2t_model_file"] = "../../../etc/passwd"
    (repo / "meta.yaml").write_text(yaml.safe_dump(meta))
    with serve_hub(repo, monkeypatch) as (commit, _), pytest.raises(Exception, match="not a plain"):
        load_from_registry(espnet_entry(commit), tmp_path / "c", monkeypatch)


def test_zoo_catalog_lists_owsm_with_espnet_converter():
    from speechkit.zoo import list_models

    models = list_models()
    for name in ("owsm-v3.1-ebf-base", "owsm-v3.1-ebf-small", "owsm-v3.1-ebf"):
        src = models[name].sources[0]
        assert (src.kind, src.converter) == ("hf", "espnet")
        assert src.repo == "espnet/" + name.replace("-", "_")
        assert src.hf_files == []  # the repo's meta.yaml names its files
