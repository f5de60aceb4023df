"""Task families that ``speechkit train`` runs: a name -> ``Task`` class registry.

A new family adds its files (config, dataset, model, ``tasks/<family>.py``) and one line here;
the trainer, checkpointing, DDP/FSDP and the CLI stay as they are. See ``tasks/base.py``.
"""

from __future__ import annotations

from speechkit.config import ConfigError
from speechkit.tasks.base import OptimizerSpec, Task, TaskInputs

__all__ = ["TASKS", "OptimizerSpec", "Task", "TaskInputs", "get_task", "register_task"]

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: makes ``cls`` available as ``task: <cls.name>`` in configs."""
    if TASKS.get(cls.name, cls) is not cls:
        raise ValueError(f"task name {cls.name!r} is taken by {TASKS[cls.name].__qualname__}")
    TASKS[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name``; a clear error naming the known ones."""
    _load_builtin()
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def _load_builtin() -> None:
    # Imported on first use: each family pulls in its models and data code.
    from speechkit.tasks import (  # noqa: F401
        codec,
        prune,
        prune_whisper,
        s2t,
        separation,
        tagger,
        tts,
        vocoder,
        whisper,
    )
