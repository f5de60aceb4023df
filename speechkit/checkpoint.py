"""The on-disk format below training, decoding and the zoo: atomic writes and safe loads.

Training checkpoints (``train/checkpoint.py`` adds discovery, retention and averaging), averaged
models and packed models are all written here: to ``NAME.tmp``, fsynced, then renamed over
``NAME``, so a crash or Ctrl-C leaves either the old file or the new one, never a truncated one.
Loading uses torch's ``weights_only`` unpickler: a file from an untrusted source cannot run code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["atomic_write", "atomic_write_text", "load_checkpoint", "save_checkpoint"]


def _fsync_dir(directory: Path) -> None:
    """Makes a rename durable (directory entries are data too); a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Calls ``write(file)`` on ``path.tmp``, fsyncs, then renames to ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    exception re-raised; an existing ``path`` is left untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically writes ``state`` with ``torch.save``; returns the path."""
    import torch  # here, so that atomic writes need no torch (the zoo lists models without it)

    path = Path(path)
    atomic_write(path, lambda f: torch.save(state, f))
    return path


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Loads a checkpoint dict; a clear error if it is missing or unreadable.

    Checkpoints hold only tensors and plain Python values, so the safe ``weights_only`` loader
    is used; files from untrusted sources therefore cannot run code when loaded. ``mmap`` maps
    the tensors instead of reading them: a cheap way to check that a large file unpickles safely.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # torch's message tells users to retry with weights_only=False: keep only its diagnosis
        why = [line for line in str(e).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise RuntimeError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain "
            f"values, and unpickling them could run code ({' '.join(why) or type(e).__name__}); "
            "a speechkit checkpoint never does, so the file is foreign or was tampered with"
        ) from e
    except Exception as e:  # torch raises several types for corrupt or foreign files
        raise RuntimeError(f"cannot load checkpoint {path}: {e}") from e


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically replaces ``path`` with ``text`` (UTF-8)."""
    path = Path(path)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path
