"""Import an ESPnet S2T (OWSM) model directory as a packed speechkit ``S2TModel``.

What is read (paths as in an OWSM hub repo; every one may also be passed explicitly)::

    meta.yaml                           ESPnet's pack manifest: names config and weights
    exp/s2t_train_*/config.yaml         the training config: model shapes, token_list, bpemodel,
                                        frontend_conf, normalize_conf.stats_file
    exp/s2t_train_*/*.pth               weights (valid.acc.ave*.pth preferred)
    data/token_list/bpe_*/bpe.model     sentencepiece model (the config's ``bpemodel``)
    exp/s2t_stats_*/train/feats_stats.npz   global MVN statistics (the config's stats_file)

What it becomes: ``S2TConfig`` with the ESPnet options set (global MVN buffers, ReLU FFNs in the
Transformer layers, scaled embedding + sinusoidal decoder positions, LayerNorm eps 1e-12, an
untied output layer), ``FeatureConfig(kind="espnet")`` with the frontend's STFT settings, and an
``EspnetTokenizer`` that keeps ESPnet's token list order. Key biases of attention are dropped
(softmax is invariant to them), every other tensor is copied and every tensor of the checkpoint
must find a place, so a layout this converter does not know fails loudly.

Supported: ``encoder: e_branchformer`` (macaron FFNs, ``abs_pos``, ``selfattn``) or
``transformer``, ``input_layer: conv2d``, ``decoder: transformer``, ``frontend: default``,
``normalize: global_mvn`` or none. Anything else raises ``ConversionError`` naming the key.

Example::

    convert_espnet("owsm_v3.1_ebf_base/", "packed/owsm-base")
    p = speechkit.pretrained.load_pretrained("packed/owsm-base")
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import yaml

from speechkit.config import ConfigError
from speechkit.convert.common import (
    ConversionError,
    TensorSource,
    copy_modules,
    load_exact,
    pack_atomically,
)
from speechkit.data.features import FeatureConfig
from speechkit.models.s2t import S2TConfig, S2TModel
from speechkit.text.espnet import EspnetTokenizer, TokenListError, read_token_list

logger = logging.getLogger(__name__)

__all__ = ["convert_espnet", "find_files", "model_config", "feature_config", "espnet_key_map"]

# ESPnet class defaults (config.yaml only stores what the recipe set).
_EBF = {
    "output_size": 256,
    "attention_heads": 4,
    "attention_layer_type": "rel_selfattn",
    "pos_enc_layer_type": "rel_pos",
    "cgmlp_linear_units": 2048,
    "cgmlp_conv_kernel": 31,
    "use_linear_after_conv": False,
    "gate_activation": "identity",
    "num_blocks": 12,
    "dropout_rate": 0.1,
    "attention_dropout_rate": 0.0,
    "input_layer": "conv2d",
    "use_ffn": False,
    "macaron_ffn": False,
    "ffn_activation_type": "swish",
    "linear_units": 2048,
    "merge_conv_kernel": 3,
    "qk_norm": False,
    "positionwise_layer_type": "linear",
    "interctc_layer_idx": None,
}
_TRF = {
    "output_size": 256,
    "attention_heads": 4,
    "linear_units": 2048,
    "num_blocks": 6,
    "dropout_rate": 0.1,
    "attention_dropout_rate": 0.0,
    "input_layer": "conv2d",
    "pos_enc_layer_type": "abs_pos",
    "normalize_before": True,
    "concat_after": False,
    "positionwise_layer_type": "linear",
    "qk_norm": False,
    "interctc_layer_idx": [],
}
_DEC = {
    "attention_heads": 4,
    "linear_units": 2048,
    "num_blocks": 6,
    "dropout_rate": 0.1,
    "self_attention_dropout_rate": 0.0,
    "src_attention_dropout_rate": 0.0,
    "input_layer": "embed",
    "use_output_layer": True,
    "normalize_before": True,
    "concat_after": False,
    "qk_norm": False,
}
_FRONT = {
    "fs": 16000,
    "n_fft": 512,
    "win_length": None,
    "hop_length": 128,
    "window": "hann",
    "center": True,
    "normalized": False,
    "onesided": True,
    "n_mels": 80,
    "fmin": None,
    "fmax": None,
    "htk": False,
}
# What the converter requires of each section: key -> accepted value(s).
_EBF_NEED = {
    "attention_layer_type": "selfattn",
    "pos_enc_layer_type": "abs_pos",
    "input_layer": "conv2d",
    "use_ffn": True,
    "macaron_ffn": True,
    "ffn_activation_type": "swish",
    "use_linear_after_conv": False,
    "gate_activation": "identity",
    "qk_norm": False,
    "positionwise_layer_type": "linear",
}
_TRF_NEED = {
    "input_layer": "conv2d",
    "pos_enc_layer_type": "abs_pos",
    "normalize_before": True,
    "concat_after": False,
    "qk_norm": False,
    "positionwise_layer_type": "linear",
}
_DEC_NEED = {
    "input_layer": "embed",
    "use_output_layer": True,
    "normalize_before": True,
    "concat_after": False,
    "qk_norm": False,
}
_FRONT_NEED = {
    "window": "hann",
    "center": True,
    "normalized": False,
    "onesided": True,
    "htk": False,
}
# speechkit E-Branchformer layer module -> ESPnet module (under encoder.encoders.{i}).
_EBF_LAYER = {
    "ffn1_norm": "norm_ff_macaron",
    "ffn1.net.0": "feed_forward_macaron.w_1",
    "ffn1.net.3": "feed_forward_macaron.w_2",
    "attn_norm": "norm_mha",
    "attn.q_proj": "attn.linear_q",
    "attn.k_proj": "attn.linear_k",
    "attn.v_proj": "attn.linear_v",
    "attn.out_proj": "attn.linear_out",
    "cgmlp_norm": "norm_mlp",
    "cgmlp.proj_in.0": "cgmlp.channel_proj1.0",
    "cgmlp.gate_norm": "cgmlp.csgu.norm",
    "cgmlp.gate_conv.conv": "cgmlp.csgu.conv",
    "cgmlp.proj_out": "cgmlp.channel_proj2",
    "merge_conv.conv": "depthwise_conv_fusion",
    "merge_proj": "merge_proj",
    "ffn2_norm": "norm_ff",
    "ffn2.net.0": "feed_forward.w_1",
    "ffn2.net.3": "feed_forward.w_2",
    "final_norm": "norm_final",
}
_TRF_LAYER = {
    "attn_norm": "norm1",
    "attn.q_proj": "self_attn.linear_q",
    "attn.k_proj": "self_attn.linear_k",
    "attn.v_proj": "self_attn.linear_v",
    "attn.out_proj": "self_attn.linear_out",
    "ffn_norm": "norm2",
    "ffn.net.0": "feed_forward.w_1",
    "ffn.net.3": "feed_forward.w_2",
}
_DEC_LAYER = {
    "self_norm": "norm1",
    "cross_norm": "norm2",
    "ffn_norm": "norm3",
    "ffn.net.0": "feed_forward.w_1",
    "ffn.net.3": "feed_forward.w_2",
}
for _ours, _theirs in (("self_attn", "self_attn"), ("cross_attn", "src_attn")):
    for _p, _q in (
        ("q_proj", "linear_q"),
        ("k_proj", "linear_k"),
        ("v_proj", "linear_v"),
        ("out_proj", "linear_out"),
    ):
        _DEC_LAYER[f"{_ours}.{_p}"] = f"{_theirs}.{_q}"
_TOP = {
    "encoder.subsample.conv.0": "encoder.embed.conv.0",
    "encoder.subsample.conv.2": "encoder.embed.conv.2",
    "encoder.subsample.out": "encoder.embed.out.0",
    "encoder.norm": "encoder.after_norm",
    "decoder.norm": "decoder.after_norm",
    "decoder.output": "decoder.output_layer",
    "ctc_head": "ctc.ctc_lo",
}
# fmt: on


def _section(config: dict, key: str, defaults: dict, need: dict, where: str) -> dict:
    """``config[key]`` over ESPnet's defaults, checked against what speechkit can represent."""
    conf = {**defaults, **(config.get(key) or {})}
    for name, want in need.items():
        if conf.get(name) != want:
            raise ConversionError(
                f"{where}: {key}.{name} = {conf.get(name)!r} is not supported (speechkit "
                f"represents ESPnet models with {name} = {want!r})"
            )
    return conf


def check_task(config: dict, where: str) -> None:
    """Raises unless ``config`` is an ESPnet S2T (OWSM) training config."""
    pre = config.get("preprocessor")
    if pre != "s2t" or "decoder" not in config:
        task = "asr" if pre == "default" else "an unknown task"
        raise ConversionError(
            f"{where}: not an ESPnet s2t config (preprocessor: {pre!r}; looks like {task}); "
            "only S2T models (OWSM, espnet2.tasks.s2t) can be imported"
        )


def model_config(config: dict, vocab_size: int, where: str = "config.yaml") -> S2TConfig:
    """The ``S2TConfig`` that represents the ESPnet model of ``config`` exactly."""
    check_task(config, where)
    kind = config.get("encoder")
    if kind == "e_branchformer":
        enc = _section(config, "encoder_conf", _EBF, _EBF_NEED, where)
    elif kind == "transformer":
        enc = _section(config, "encoder_conf", _TRF, _TRF_NEED, where)
    else:
        raise ConversionError(
            f"{where}: encoder {kind!r} is not supported (e_branchformer, transformer)"
        )
    if config.get("decoder") != "transformer":
        raise ConversionError(
            f"{where}: decoder {config.get('decoder')!r} is not supported (transformer)"
        )
    dec = _section(config, "decoder_conf", _DEC, _DEC_NEED, where)
    if enc.get("interctc_layer_idx"):
        raise ConversionError(f"{where}: encoder_conf.interctc_layer_idx is not supported")
    if dec["attention_heads"] != enc["attention_heads"]:
        raise ConversionError(
            f"{where}: decoder_conf.attention_heads {dec['attention_heads']} != encoder "
            f"{enc['attention_heads']}; speechkit's S2TModel shares n_heads"
        )
    front = _section(config, "frontend_conf", _FRONT, _FRONT_NEED, where)
    model_conf = config.get("model_conf") or {}
    try:
        return S2TConfig(
            n_mels=front["n_mels"], vocab_size=vocab_size, d_model=enc["output_size"],
            n_heads=enc["attention_heads"],
            encoder_type="ebranchformer" if kind == "e_branchformer" else "transformer",
            encoder_layers=enc["num_blocks"], encoder_ffn=enc["linear_units"],
            cgmlp_units=enc.get("cgmlp_linear_units", 2048),
            cgmlp_kernel=enc.get("cgmlp_conv_kernel", 31),
            merge_conv_kernel=enc.get("merge_conv_kernel", 3), decoder_layers=dec["num_blocks"],
            decoder_ffn=dec["linear_units"], dropout=enc["dropout_rate"],
            attention_dropout=enc["attention_dropout_rate"], max_target_positions=5000,
            ctc_weight=model_conf.get("ctc_weight", 0.5),
            label_smoothing=model_conf.get("lsm_weight", 0.0), tie_embeddings=False,
            global_mvn=config.get("normalize") == "global_mvn", ffn_activation="relu",
            decoder_positions="sinusoidal", layer_norm_eps=1e-12,
        )  # fmt: skip
    except ConfigError as e:
        raise ConversionError(f"{where}: {e}") from e


def feature_config(config: dict, where: str = "config.yaml") -> FeatureConfig:
    """ESPnet's ``DefaultFrontend`` settings as a ``FeatureConfig(kind="espnet")``."""
    if config.get("frontend", "default") != "default":
        raise ConversionError(f"{where}: frontend {config.get('frontend')!r} is not supported")
    if config.get("normalize") not in (None, "global_mvn"):
        raise ConversionError(
            f"{where}: normalize {config.get('normalize')!r} is not supported (global_mvn)"
        )
    front = _section(config, "frontend_conf", _FRONT, _FRONT_NEED, where)
    fs = front["fs"]
    if isinstance(fs, str):
        fs = int(float(fs.lower().rstrip("k")) * 1000) if fs.lower().endswith("k") else int(fs)
    if front["fmin"] not in (None, 0) or front["fmax"] not in (None, fs / 2):
        raise ConversionError(f"{where}: frontend_conf fmin/fmax other than 0/Nyquist")
    return FeatureConfig(
        kind="espnet", n_mels=front["n_mels"], sample_rate=fs, n_fft=front["n_fft"],
        hop_length=front["hop_length"], normalize="none", win_length=front["win_length"] or 0,
    )  # fmt: skip


def espnet_key_map(cfg: S2TConfig) -> list[tuple[str, str]]:
    """(speechkit module, ESPnet module) pairs of every weight-bearing module."""
    pairs = list(_TOP.items())
    layer = _EBF_LAYER if cfg.encoder_type == "ebranchformer" else _TRF_LAYER
    for i in range(cfg.encoder_layers):
        pairs += [
            (f"encoder.layers.{i}.{a}", f"encoder.encoders.{i}.{b}") for a, b in layer.items()
        ]
    for i in range(cfg.decoder_layers):
        pairs += [
            (f"decoder.layers.{i}.{a}", f"decoder.decoders.{i}.{b}") for a, b in _DEC_LAYER.items()
        ]
    return pairs


def _mvn_stats(stats_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) from ESPnet's feats_stats.npz, as ESPnet's GlobalMVN computes them."""
    stats = np.load(stats_file)
    try:
        count, total, squares = stats["count"], stats["sum"], stats["sum_square"]
    except KeyError as e:
        raise ConversionError(f"{stats_file}: no {e} array (count, sum, sum_square)") from e
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 1e-20))
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def convert_state(src: TensorSource, cfg: S2TConfig, stats: tuple | None) -> dict:
    """A speechkit state dict for ``S2TModel(cfg)`` from ESPnet's tensors."""
    state: dict[str, torch.Tensor] = {}
    copy_modules(src, state, espnet_key_map(cfg))
    state["decoder.embed.weight"] = src.take("decoder.embed.0.weight")  # an embedding: no bias
    if cfg.global_mvn:
        if stats is None:
            stats = (src.take("normalize.mean"), src.take("normalize.std"))
        elif "normalize.mean" in src:
            for name, ours in zip(("mean", "std"), stats):
                theirs = src.take(f"normalize.{name}")
                if theirs.shape != ours.shape or not torch.allclose(
                    theirs, ours, rtol=1e-4, atol=1e-5
                ):
                    raise ConversionError(
                        f"{src.file}: normalize.{name} disagrees with feats_stats.npz; the stats "
                        "file is from another run"
                    )
        state["encoder.mvn.mean"], state["encoder.mvn.std"] = stats
    # Buffers ESPnet saves that speechkit recomputes: mel filters (frontend), MVN (handled above).
    left = sorted(
        k
        for k in src.tensors
        if k not in src.used and not k.startswith(("normalize.", "frontend."))
    )
    if left:
        raise ConversionError(
            f"{src.file}: {len(left)} tensors have no place in the model its config describes: "
            f"{left[:6]}"
        )
    return state


META = "meta.yaml"  # the manifest at the root of an ESPnet model-zoo pack (and hub repo)


def packed_paths(meta: dict, where: str) -> tuple[str, str]:
    """(training config, checkpoint) that an ESPnet pack's ``meta.yaml`` names, as paths
    relative to the pack: ``yaml_files.s2t_train_config`` and ``files.s2t_model_file`` (another
    task's ``*_train_config`` / ``*_model_file`` are taken too, and rejected by ``check_task``)."""

    def pick(entries: dict, suffix: str):
        named = entries.get(f"s2t_{suffix}")
        return named or next((v for k, v in entries.items() if k.endswith(suffix)), None)

    files, yaml_files = meta.get("files") or {}, meta.get("yaml_files") or {}
    config, checkpoint = pick(yaml_files, "train_config"), pick(files, "model_file")
    if not isinstance(config, str) or not isinstance(checkpoint, str):
        raise ConversionError(
            f"{where}: names no training config and checkpoint "
            "(yaml_files.s2t_train_config, files.s2t_model_file)"
        )
    return config, checkpoint


def referenced_files(config: dict) -> dict[str, str]:
    """Relative paths of the files a training config points at, by key: ``bpemodel``,
    ``token_list`` (when a file), ``stats_file`` (``normalize_conf``; optional: without it the
    checkpoint's normalisation buffers are used)."""
    names = {
        "bpemodel": config.get("bpemodel"),
        "token_list": config.get("token_list"),
        "stats_file": (config.get("normalize_conf") or {}).get("stats_file"),
    }
    return {
        k: n for k, n in names.items() if isinstance(n, str) and n and not Path(n).is_absolute()
    }


def find_files(root: Path) -> dict[str, Path]:
    """config.yaml and the checkpoint under ``root``: those its ``meta.yaml`` names (an ESPnet
    pack or hub snapshot), else ``exp/*/config.yaml`` next to a ``.pth``, or the exp dir itself."""
    if (root / META).is_file():
        meta = yaml.safe_load((root / META).read_text(encoding="utf-8")) or {}
        config, checkpoint = packed_paths(meta, str(root / META))
        found = {"config": root / config, "checkpoint": root / checkpoint}
        for what, path in found.items():
            if not path.is_file():
                raise ConversionError(f"{root / META} names {what} {path}, which does not exist")
        return found
    configs = [root / "config.yaml"] if (root / "config.yaml").is_file() else []
    configs += sorted(p for p in root.glob("exp/*/config.yaml") if any(p.parent.glob("*.pth")))
    if not configs:
        raise ConversionError(
            f"{root}: no config.yaml next to a .pth checkpoint (exp/*/config.yaml)"
        )
    config = configs[0]
    pths = sorted(config.parent.glob("valid.acc.ave*.pth")) or sorted(config.parent.glob("*.pth"))
    if not pths:
        raise ConversionError(f"{config.parent}: no .pth checkpoint")
    return {"config": config, "checkpoint": pths[0]}


def _resolve(root: Path, name: str | None, fallback: str, what: str) -> Path:
    """A path named in config.yaml (relative to the recipe root), else the first ``fallback``."""
    if name:
        for base in (root, Path.cwd()):
            if (base / name).is_file():
                return base / name
    found = sorted(root.rglob(fallback))
    if not found:
        raise ConversionError(f"{root}: no {what} ({name or fallback})")
    return found[0]


def _tokenizer(config: dict, root: Path, where: str) -> EspnetTokenizer:
    token_list = config.get("token_list")
    if isinstance(token_list, str):
        token_list = read_token_list(_resolve(root, token_list, "tokens.txt", "token list"))
    if not token_list:
        raise ConversionError(f"{where}: no token_list")
    bpe = _resolve(root, config.get("bpemodel"), "bpe.model", "BPE model")
    try:
        return EspnetTokenizer(bpe.read_bytes(), token_list, f"{where}: token_list (with {bpe})")
    except TokenListError as e:
        raise ConversionError(str(e)) from e


def convert_espnet(inputs: str | Path, out_dir: str | Path, **kwargs) -> Path:
    """Converts the ESPnet S2T model directory ``inputs`` into a packed directory ``out_dir``."""
    root, out_dir = Path(inputs), Path(out_dir)
    files = find_files(root)
    where = str(files["config"])
    config = yaml.safe_load(files["config"].read_text(encoding="utf-8")) or {}
    check_task(config, where)
    tokenizer = _tokenizer(config, root, where)
    cfg = model_config(config, tokenizer.vocab_size, where)
    features = feature_config(config, where)
    tensors = torch.load(files["checkpoint"], map_location="cpu", weights_only=True)
    out_dim = tensors.get("decoder.output_layer.weight")
    if out_dim is not None and out_dim.shape[0] != tokenizer.vocab_size:
        raise ConversionError(
            f"{files['checkpoint']}: output layer has {out_dim.shape[0]} tokens but the token "
            f"list of {where} has {tokenizer.vocab_size}"
        )
    stats = None
    if cfg.global_mvn:
        stats_name = (config.get("normalize_conf") or {}).get("stats_file")
        try:
            stats = _mvn_stats(_resolve(root, stats_name, "feats_stats.npz", "feats_stats.npz"))
        except ConversionError:
            logger.info("%s: no feats_stats.npz; using the checkpoint's normalize buffers", root)
    try:
        state = convert_state(TensorSource(tensors, files["checkpoint"]), cfg, stats)
    except ConversionError as e:
        raise ConversionError(f"{e} (checkpoint and {where} disagree)") from e
    model = S2TModel(cfg)
    load_exact(model, state, f"{files['checkpoint']}: does not fit {where}")
    pack_atomically(model, tokenizer, features, out_dir, f"espnet:{root}", cfg)
    logger.info("converted ESPnet model %s -> %s", root, out_dir)
    return out_dir
