"""The speechkit model zoo: named pretrained models, fetched from several sources and cached in
speechkit's packed layout.

    from speechkit import zoo
    path = zoo.download("whisper-tiny.en")          # -> ~/.cache/speechkit/models/whisper-tiny.en
    pretrained = zoo.load("whisper-tiny.en")         # -> speechkit.pretrained.Pretrained
    zoo.verify("whisper-tiny.en")                    # hash every cached file again
    zoo.list_models()                                # -> {name: ModelEntry}

Command line: ``speechkit zoo list | info NAME | download NAME | verify NAME``
(speechkit/bin/zoo.py).
Entries live in speechkit/zoo/catalog.py; see speechkit/zoo/registry.py for the schema.
"""

from __future__ import annotations

from speechkit.zoo.cache import CACHE_ENV, cache_root
from speechkit.zoo.errors import (
    AllSourcesFailed,
    ChecksumError,
    DiskFullError,
    NetworkError,
    OfflineError,
    UnknownModelError,
    ZooError,
)
from speechkit.zoo.fetch import OFFLINE_ENV, download, load, verify
from speechkit.zoo.registry import ModelEntry, SourceSpec, get_entry, load_registry

__all__ = [
    "download",
    "load",
    "verify",
    "list_models",
    "get_entry",
    "cache_root",
    "ModelEntry",
    "SourceSpec",
    "ZooError",
    "UnknownModelError",
    "AllSourcesFailed",
    "ChecksumError",
    "NetworkError",
    "OfflineError",
    "DiskFullError",
    "CACHE_ENV",
    "OFFLINE_ENV",
]


def list_models() -> dict[str, ModelEntry]:
    """Every registered model (built-in plus ``$SPEECHKIT_ZOO_REGISTRY``), by name."""
    return load_registry()
