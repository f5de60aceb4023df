"""Hugging Face transformers Whisper checkpoints -> packed speechkit model.

Reads a ``save_pretrained`` directory of ``WhisperForConditionalGeneration`` (or the bare
``WhisperModel``): ``config.json``, weights as ``model.safetensors``, ``pytorch_model.bin`` or a
sharded ``*.index.json``, and ``tokenizer.json``. transformers itself is not needed.

Name map (``L`` a layer; the ``model.`` prefix is absent in a bare ``WhisperModel``)::

    model.encoder.conv{1,2}, model.encoder.embed_positions.weight, model.encoder.layer_norm
    model.{encoder,decoder}.layers.L.self_attn.{q,k,v,out}_proj, .self_attn_layer_norm
    model.decoder.layers.L.encoder_attn.*, .encoder_attn_layer_norm
    model.{encoder,decoder}.layers.L.fc1, .fc2, .final_layer_norm
    model.decoder.embed_tokens.weight, model.decoder.embed_positions.weight, model.decoder.layer_norm
    proj_out.weight   (tied to embed_tokens; checked, not stored)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import Tensor

from speechkit.convert.common import (
    ConversionError,
    TensorSource,
    copy_modules,
    layer_modules,
    write_whisper_dir,
)
from speechkit.models.whisper import WhisperConfig

logger = logging.getLogger(__name__)

__all__ = ["convert_hf", "hf_state_dict"]

# speechkit layer module -> transformers layer module
_LAYER_NAMES = {
    "attn_norm": "self_attn_layer_norm",
    "attn.q_proj": "self_attn.q_proj",
    "attn.k_proj": "self_attn.k_proj",
    "attn.v_proj": "self_attn.v_proj",
    "attn.out_proj": "self_attn.out_proj",
    "self_norm": "self_attn_layer_norm",
    "self_attn.q_proj": "self_attn.q_proj",
    "self_attn.k_proj": "self_attn.k_proj",
    "self_attn.v_proj": "self_attn.v_proj",
    "self_attn.out_proj": "self_attn.out_proj",
    "cross_norm": "encoder_attn_layer_norm",
    "cross_attn.q_proj": "encoder_attn.q_proj",
    "cross_attn.k_proj": "encoder_attn.k_proj",
    "cross_attn.v_proj": "encoder_attn.v_proj",
    "cross_attn.out_proj": "encoder_attn.out_proj",
    "ffn_norm": "final_layer_norm",
    "ffn.net.0": "fc1",
    "ffn.net.3": "fc2",
}


def _load_weights(model_dir: Path) -> tuple[dict[str, Tensor], Path]:
    """All tensors of a transformers checkpoint directory, and the file they came from."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = model_dir / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            tensors: dict[str, Tensor] = {}
            for shard in shards:
                tensors.update(_load_file(model_dir / shard))
            return tensors, index
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).is_file():
            return _load_file(model_dir / name), model_dir / name
    raise FileNotFoundError(
        f"{model_dir}: no model.safetensors, pytorch_model.bin or sharded index; not a "
        "transformers save_pretrained directory"
    )


def _load_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # transformers' format; imported when used

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _config(config_path: Path) -> WhisperConfig:
    if not config_path.is_file():
        raise FileNotFoundError(f"transformers config {config_path} does not exist")
    c = json.loads(config_path.read_text())
    try:
        cfg = WhisperConfig(
            n_mels=c["num_mel_bins"],
            n_audio_ctx=c["max_source_positions"],
            n_audio_state=c["d_model"],
            n_audio_head=c["encoder_attention_heads"],
            n_audio_layer=c["encoder_layers"],
            n_vocab=c["vocab_size"],
            n_text_ctx=c["max_target_positions"],
            n_text_state=c["d_model"],
            n_text_head=c["decoder_attention_heads"],
            n_text_layer=c["decoder_layers"],
        )
    except KeyError as e:
        raise ConversionError(f"{config_path}: missing key {e}; not a Whisper config") from e
    checks = {
        "activation_function": (c.get("activation_function", "gelu"), "gelu"),
        "encoder_ffn_dim": (c.get("encoder_ffn_dim", 4 * cfg.n_audio_state), 4 * cfg.n_audio_state),
        "decoder_ffn_dim": (c.get("decoder_ffn_dim", 4 * cfg.n_text_state), 4 * cfg.n_text_state),
        "scale_embedding": (c.get("scale_embedding", False), False),
    }
    for key, (got, want) in checks.items():
        if got != want:
            raise ConversionError(
                f"{config_path}: {key} = {got!r}, but Whisper's architecture has {want!r}"
            )
    return cfg


def hf_state_dict(
    model_dir: str | Path, weights_file: Path | None = None
) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """A transformers Whisper directory -> (WhisperConfig, float32 ``WhisperModel`` state).

    ``weights_file``: read the weights from this file instead of the directory's checkpoint.
    """
    model_dir = Path(model_dir)
    cfg = _config(model_dir / "config.json")
    if weights_file is None:
        tensors, weights_file = _load_weights(model_dir)
    else:
        tensors = _load_file(Path(weights_file))
    src = TensorSource(tensors, weights_file)
    p = "model." if "model.encoder.conv1.weight" in src else ""
    state: dict[str, Tensor] = {}
    pairs = [("encoder.conv1", f"{p}encoder.conv1"), ("encoder.conv2", f"{p}encoder.conv2"),
             ("encoder.norm", f"{p}encoder.layer_norm"), ("decoder.norm", f"{p}decoder.layer_norm")]  # fmt: skip
    for i in range(cfg.n_audio_layer):
        pairs += layer_modules("encoder", i, _LAYER_NAMES, p + "encoder.layers.{i}")
    for i in range(cfg.n_text_layer):
        pairs += layer_modules("decoder", i, _LAYER_NAMES, p + "decoder.layers.{i}")
    copy_modules(src, state, pairs)
    state["encoder.positions"] = src.take(f"{p}encoder.embed_positions.weight")
    state["decoder.embed.weight"] = src.take(f"{p}decoder.embed_tokens.weight")
    state["decoder.positions"] = src.take(f"{p}decoder.embed_positions.weight")
    if "proj_out.weight" in src and not torch.equal(
        src.take("proj_out.weight"), state["decoder.embed.weight"]
    ):
        raise ConversionError(f"{weights_file}: proj_out is not tied to embed_tokens")
    src.check_all_used()
    return cfg, state


def convert_hf(model_dir_or_state: Path, out_dir: Path, tokenizer_json: Path | None = None) -> Path:
    """transformers Whisper directory -> packed ``out_dir``.

    ``model_dir_or_state``: the ``save_pretrained`` directory, or one weight file in it (its
    directory must hold ``config.json``). ``tokenizer_json`` defaults to the directory's
    ``tokenizer.json``.
    """
    path = Path(model_dir_or_state)
    if not path.exists():
        raise FileNotFoundError(f"transformers model {path} does not exist")
    model_dir = path if path.is_dir() else path.parent
    cfg, state = hf_state_dict(model_dir, weights_file=None if path.is_dir() else path)
    tok = Path(tokenizer_json) if tokenizer_json is not None else model_dir / "tokenizer.json"
    return write_whisper_dir(cfg, state, tok, out_dir, str(path))
