"""Small ESPnet S2T model directories for tests, in the layout of the OWSM hub repos.

``write_espnet_dir(root, encoder)`` builds ESPnet's own model (needs espnet installed) with random
weights; ``write_fake_espnet_dir(root)`` writes the same layout without ESPnet (a speechkit model
saved under ESPnet's tensor names), for tests of the zoo, fine-tuning and decoding mechanics.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import yaml

from speechkit.convert import espnet_reference

N_MELS = 20
EXP = "exp/s2t_train_tiny"
STATS = "exp/s2t_stats_tiny/train/feats_stats.npz"
BPE = "data/token_list/bpe_unigram40/bpe.model"
TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "hello world how are you",
    "der hund lief im park",
    "guten morgen wie geht es",
] * 4
LANGS, TASKS = ["eng", "deu"], ["asr", "st_eng", "st_deu"]
RESOLUTION, MAX_TIME = 0.02, 1.0


def train_bpe(vocab_size: int = 40) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    return model.getvalue()


def token_list(bpe: bytes) -> list[str]:
    """OWSM's order: blank, unk, na, nospeech, languages, tasks, notimestamps, times, pieces by
    frequency (not sentencepiece id order), then sos, eos, sop."""
    sp = spm.SentencePieceProcessor(model_proto=bpe)
    counts: dict[str, int] = {}
    for text in TEXTS:
        for piece in sp.encode(text, out_type=str):
            counts[piece] = counts.get(piece, 0) + 1
    pieces = sorted(counts, key=lambda p: (-counts[p], p))
    steps = round(MAX_TIME / RESOLUTION)
    times = [f"<{k * RESOLUTION:.2f}>" for k in range(steps + 1)]
    return (
        ["<blank>", "<unk>", "<na>", "<nospeech>"]
        + [f"<{x}>" for x in LANGS + TASKS]
        + ["<notimestamps>", *times, *pieces, "<sos>", "<eos>", "<sop>"]
    )


def espnet_config(encoder: str, tokens: list[str], d: int = 32) -> dict:
    enc = {"output_size": d, "attention_heads": 4, "linear_units": 48, "num_blocks": 2,
           "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
           "input_layer": "conv2d"}  # fmt: skip
    if encoder == "e_branchformer":
        enc.update(
            attention_layer_type="selfattn", pos_enc_layer_type="abs_pos", rel_pos_type="latest",
            cgmlp_linear_units=48, cgmlp_conv_kernel=5, use_linear_after_conv=False,
            gate_activation="identity", layer_drop_rate=0.0, positionwise_layer_type="linear",
            use_ffn=True, macaron_ffn=True, merge_conv_kernel=3,
        )  # fmt: skip
    return {
        "token_list": tokens,
        "token_type": "bpe",
        "bpemodel": BPE,
        "input_size": None,
        "frontend": "default",
        "frontend_conf": {"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": N_MELS},
        "specaug": None,
        "normalize": "global_mvn",
        "normalize_conf": {"stats_file": STATS},
        "preencoder": None,
        "encoder": encoder,
        "encoder_conf": enc,
        "postencoder": None,
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 4, "linear_units": 48, "num_blocks": 2,
                         "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                         "self_attention_dropout_rate": 0.1, "src_attention_dropout_rate": 0.1},
        "model": "espnet",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "sym_na": "<na>"},
        "preprocessor": "s2t",
        "preprocessor_conf": {"text_prev_name": "text_prev", "text_ctc_name": "text_ctc",
                              "fs": 16000, "na_symbol": "<na>", "speech_length": 1,
                              "speech_resolution": RESOLUTION, "speech_init_silence": 1,
                              "text_prev_apply_prob": 0.5, "time_apply_prob": 0.5,
                              "notime_symbol": "<notimestamps>", "first_time_symbol": "<0.00>",
                              "last_time_symbol": f"<{MAX_TIME:.2f}>"},
    }  # fmt: skip


def write_stats(path: Path, seed: int = 0) -> None:
    g = np.random.default_rng(seed)
    count = 500
    mean = g.normal(-6.0, 1.0, N_MELS)
    var = g.uniform(1.0, 4.0, N_MELS)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, count=np.array(count), sum=mean * count, sum_square=(var + mean**2) * count)


def _layout(root: Path, encoder: str) -> tuple[dict, list[str]]:
    bpe = train_bpe()
    (root / BPE).parent.mkdir(parents=True, exist_ok=True)
    (root / BPE).write_bytes(bpe)
    tokens = token_list(bpe)
    write_stats(root / STATS)
    config = espnet_config(encoder, tokens)
    (root / EXP).mkdir(parents=True, exist_ok=True)
    (root / EXP / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config, tokens


def build_espnet_model(config: dict, root: Path, seed: int = 0):
    """ESPnet's own ESPnetS2TModel from ``config`` with random weights (all tensors perturbed)."""
    return espnet_reference.build_espnet_model(config, root / STATS, seed)


def fit(model, waves: list[torch.Tensor], text: str, tokens: list[str], steps: int) -> None:
    """A few Adam steps of ESPnet's own losses (attention CE + CTC) on ``waves`` -> ``text``, so
    that searches meet a peaked model that ends its output (random weights never emit <eos>)."""
    sp = spm.SentencePieceProcessor(model_proto=(Path(model.bpe_path)).read_bytes())
    index = {t: i for i, t in enumerate(tokens)}
    text_ids = [index[p] for p in sp.encode(text, out_type=str)]
    sot = [index[t] for t in ("<sos>", "<eng>", "<asr>", "<notimestamps>")]
    ys_in = torch.tensor([sot + text_ids] * len(waves))
    ys_out = torch.tensor([sot[1:] + text_ids + [index["<eos>"]]] * len(waves))
    speech = torch.stack(waves)
    lens = torch.full((len(waves),), speech.size(1))
    target, target_lens = (
        torch.tensor([text_ids] * len(waves)),
        torch.full((len(waves),), len(text_ids)),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()  # no dropout: the fit is deterministic
    for _ in range(steps):
        enc, enc_lens = model.encode(speech, lens)
        logits, _ = model.decoder(enc, enc_lens, ys_in, torch.full_like(lens, ys_in.size(1)))
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ys_out)
        loss = ce + 0.3 * model.ctc(enc, enc_lens, target, target_lens) / len(waves)
        opt.zero_grad()
        loss.backward()
        opt.step()


def write_espnet_dir(
    root: Path, encoder: str = "e_branchformer", seed: int = 0, fit_waves=(), steps: int = 40
):
    """An OWSM-layout directory holding ESPnet's own model; returns (model, args, config).

    With ``fit_waves`` the random model is first fitted to say "the cat sat" for them."""
    config, tokens = _layout(root, encoder)
    model, args = build_espnet_model(config, root, seed)
    if fit_waves:
        model.bpe_path = root / BPE
        fit(model, list(fit_waves), "the cat sat", tokens, steps)
    torch.save(model.state_dict(), root / EXP / "valid.acc.ave_3best.pth")
    # ESPnet saves every argument of the run (what Speech2Text reads back).
    full = {**vars(args), "normalize_conf": {"stats_file": STATS}}
    (root / EXP / "config.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    return model, args, config


def write_fake_espnet_dir(root: Path, encoder: str = "e_branchformer", seed: int = 0) -> Path:
    """The same layout without ESPnet: a random speechkit model saved under ESPnet's names."""
    from speechkit.convert.espnet import espnet_key_map, model_config
    from speechkit.models.s2t import S2TModel

    config, tokens = _layout(root, encoder)
    cfg = model_config(config, len(tokens))
    torch.manual_seed(seed)
    model = S2TModel(cfg)
    ours = model.state_dict()
    state = {}
    for sk, es in espnet_key_map(cfg):
        state[f"{es}.weight"] = ours[f"{sk}.weight"]
        bias = ours.get(f"{sk}.bias")
        state[f"{es}.bias"] = bias if bias is not None else torch.zeros(cfg.d_model)  # k_proj
    state["decoder.embed.0.weight"] = ours["decoder.embed.weight"]
    stats = np.load(root / STATS)
    mean = stats["sum"] / stats["count"]
    state["normalize.mean"] = torch.from_numpy(mean)
    state["normalize.std"] = torch.from_numpy(
        np.sqrt(stats["sum_square"] / stats["count"] - mean**2)
    )
    torch.save(state, root / EXP / "valid.acc.ave_3best.pth")
    return root
