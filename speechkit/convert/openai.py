"""OpenAI's original Whisper checkpoints (``tiny.pt`` ...) -> packed speechkit model.

A checkpoint is ``{"dims": {n_mels, n_vocab, n_audio_ctx, ...}, "model_state_dict": {...}}``.
It carries no tokenizer: pass the ``tokenizer.json`` of the same model family (English-only for
``*.en`` models, whose ``n_vocab`` is 51864; multilingual for 51865 and more).

Name map (``L`` a layer)::

    encoder.conv{1,2}, encoder.positional_embedding, encoder.ln_post
    {encoder,decoder}.blocks.L.attn.{query,key,value,out}, .attn_ln
    decoder.blocks.L.cross_attn.*, .cross_attn_ln
    {encoder,decoder}.blocks.L.mlp.0, .mlp.2, .mlp_ln
    decoder.token_embedding.weight, decoder.positional_embedding, decoder.ln
"""

from __future__ import annotations

import dataclasses
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

__all__ = ["convert_openai", "openai_state_dict"]

# speechkit layer module -> OpenAI block module
_LAYER_NAMES = {
    "attn_norm": "attn_ln",
    "attn.q_proj": "attn.query",
    "attn.k_proj": "attn.key",
    "attn.v_proj": "attn.value",
    "attn.out_proj": "attn.out",
    "self_norm": "attn_ln",
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "cross_norm": "cross_attn_ln",
    "cross_attn.q_proj": "cross_attn.query",
    "cross_attn.k_proj": "cross_attn.key",
    "cross_attn.v_proj": "cross_attn.value",
    "cross_attn.out_proj": "cross_attn.out",
    "ffn_norm": "mlp_ln",
    "ffn.net.0": "mlp.0",
    "ffn.net.3": "mlp.2",
}
# Buffers some versions of the OpenAI model save that carry no weights.
_IGNORED = ("alignment_heads", "decoder.mask")
_DIM_NAMES = {f.name for f in dataclasses.fields(WhisperConfig)} - {
    "attention_backend",
    "label_smoothing",
}


def _load(checkpoint_pt: Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    if not checkpoint_pt.is_file():
        raise FileNotFoundError(f"OpenAI Whisper checkpoint {checkpoint_pt} does not exist")
    try:
        ckpt = torch.load(checkpoint_pt, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights_only errors have no common type
        raise ConversionError(f"{checkpoint_pt}: cannot read as a torch checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise ConversionError(
            f"{checkpoint_pt}: not an OpenAI Whisper checkpoint (needs 'dims' and "
            "'model_state_dict')"
        )
    dims = dict(ckpt["dims"])
    unknown = sorted(set(dims) - _DIM_NAMES)
    missing = sorted(_DIM_NAMES - set(dims))
    if unknown or missing:
        raise ConversionError(f"{checkpoint_pt}: dims has unknown keys {unknown} / lacks {missing}")
    return WhisperConfig(**{k: int(v) for k, v in dims.items()}), ckpt["model_state_dict"]


def openai_state_dict(checkpoint_pt: str | Path) -> tuple[WhisperConfig, dict[str, Tensor]]:
    """An OpenAI checkpoint -> (WhisperConfig, float32 ``WhisperModel`` state)."""
    checkpoint_pt = Path(checkpoint_pt)
    cfg, tensors = _load(checkpoint_pt)
    src = TensorSource(tensors, checkpoint_pt)
    pairs = [("encoder.conv1", "encoder.conv1"), ("encoder.conv2", "encoder.conv2"),
             ("encoder.norm", "encoder.ln_post"), ("decoder.norm", "decoder.ln")]  # fmt: skip
    for i in range(cfg.n_audio_layer):
        pairs += layer_modules("encoder", i, _LAYER_NAMES, "encoder.blocks.{i}")
    for i in range(cfg.n_text_layer):
        pairs += layer_modules("decoder", i, _LAYER_NAMES, "decoder.blocks.{i}")
    state: dict[str, Tensor] = {}
    copy_modules(src, state, pairs)
    if "encoder.positional_embedding" in src:
        state["encoder.positions"] = src.take("encoder.positional_embedding")
    else:  # stored as a non-persistent buffer by some versions: rebuild it
        from speechkit.models.whisper import whisper_sinusoids

        state["encoder.positions"] = whisper_sinusoids(cfg.n_audio_ctx, cfg.n_audio_state)
    state["decoder.embed.weight"] = src.take("decoder.token_embedding.weight")
    state["decoder.positions"] = src.take("decoder.positional_embedding")
    src.check_all_used(ignore=_IGNORED)
    return cfg, state


def convert_openai(checkpoint_pt: Path, out_dir: Path, tokenizer_json: Path | None = None) -> Path:
    """OpenAI ``.pt`` checkpoint -> packed ``out_dir``.

    ``tokenizer_json``: a Whisper ``tokenizer.json`` matching the checkpoint's vocabulary
    (English-only iff ``n_vocab < 51865``); None looks for ``tokenizer.json`` next to the
    checkpoint.
    """
    checkpoint_pt = Path(checkpoint_pt)
    cfg, state = openai_state_dict(checkpoint_pt)
    if tokenizer_json is None:
        tokenizer_json = checkpoint_pt.parent / "tokenizer.json"
        if not tokenizer_json.is_file():
            kind = "multilingual" if cfg.multilingual else "English-only"
            raise FileNotFoundError(
                f"{checkpoint_pt}: OpenAI checkpoints carry no tokenizer and there is no "
                f"{tokenizer_json}; pass tokenizer_json= (a {kind} Whisper tokenizer.json, e.g. "
                "from the CTranslate2 or transformers release of the same model)"
            )
    return write_whisper_dir(cfg, state, tokenizer_json, out_dir, str(checkpoint_pt))
