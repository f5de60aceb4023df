"""Typed configs: dataclasses filled from YAML, strictly.

Every config in speechkit is a (possibly nested) dataclass. YAML files only fill values: they
never name classes to build. Loading is strict:

* an unknown key is an error that names the key path and the file;
* a value of the wrong type is an error (ints are accepted where floats are expected);
* cross-field rules live in each dataclass's ``__post_init__`` and raise ``ConfigError``.

Supported field types: ``int``, ``float``, ``str``, ``bool``, ``Optional[T]``, ``Literal[...]``,
``list[T]``, ``tuple[T, ...]``, ``dict[str, T]`` and nested dataclasses.

Example::

    cfg = load_config(ExperimentConfig, "conf/train_tiny.yaml", overrides=["optim.lr=1e-3"])
    save_config(cfg, "exp/run/config.yaml")
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "fill_defaults",
    "from_dict",
    "to_dict",
    "load_config",
    "save_config",
    "apply_overrides",
    "parse_bool",
    "read_yaml",
]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the source file."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` and converts containers and dataclasses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} does not match {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (list, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = args or (Any,)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, val_tp = args or (Any, Any)
        return {
            _convert(k, key_tp, f"{where}.<key>"): _convert(v, val_tp, f"{where}.{k}")
            for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-3" (no dot) as a string; accept it as the number it is.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def _from_dict(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' for {cls.__name__}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _convert(value, hints[name], key)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ConfigError(f"missing required key '{where + '.' if where else ''}{missing[0]}'")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def from_dict(cls: type[T], data: dict | None, source: str = "<dict>") -> T:
    """Builds ``cls`` from a plain mapping; errors name the key and ``source``."""
    try:
        return _from_dict(cls, data or {}, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def to_dict(cfg: Any) -> Any:
    """The inverse of :func:`from_dict`: plain dicts, lists and scalars (YAML-safe)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass an annotation holds (``D`` or ``Optional[D]``), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return found[0] if len(found) == 1 else None
    return None


def fill_defaults(data: dict, cls: type, sections: dict[str, type] | None = None) -> dict:
    """A copy of the plain mapping ``data`` in which every field of the dataclass ``cls`` that
    ``data`` lacks takes its default (as :func:`to_dict` writes it), in nested dataclass
    sections too. ``sections`` names the class of top-level keys that are not ``cls``'s own
    fields, or hold another class than the field's annotation (a task's stored extras).

    What a stored config (a checkpoint's, a finished run's) would read under the current code:
    a field added since, whose default keeps the old behaviour, then compares equal to the
    current config's default. Keys ``cls`` does not know and required fields are left as they
    are (nothing is validated), so a comparison still names them."""
    out = dict(data)
    hints = typing.get_type_hints(cls)
    classes = {f.name: _dataclass_of(hints.get(f.name)) for f in dataclasses.fields(cls)}
    classes.update(sections or {})
    for f in dataclasses.fields(cls):
        if f.name in out:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = to_dict(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = to_dict(f.default_factory())  # type: ignore[misc]
    for name, sub in classes.items():
        if sub is not None and isinstance(out.get(name), dict):
            out[name] = fill_defaults(out[name], sub)
    return out


def _parse_scalar(text: str) -> Any:
    return yaml.safe_load(text)


def add_overrides_argument(parser, example: str) -> None:
    """Adds ``--set KEY=VALUE ...`` (repeatable; into ``args.overrides``) to an argparse parser.

    example: shown in the help, e.g. ``"optim.lr=5e-4 trainer.max_epochs=3"``.
    """
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help=f"config overrides, e.g. --set {example} (repeatable)",
    )


def parse_bool(text: str) -> bool:
    """An argparse ``type`` for ``true`` / ``false``, as shell recipes pass flags (``--download
    false``); anything else is an error argparse reports."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value == "true"


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Applies ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        path, text = item.split("=", 1)
        node = data
        keys = path.strip().split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{k}' is not a mapping")
        node[keys[-1]] = _parse_scalar(text)
    return data


def load_config(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
    """Loads a YAML file into the dataclass ``cls``; see the module docstring for the rules."""
    return from_dict(cls, read_yaml(path, overrides), source=str(path))


def read_yaml(path: str | Path, overrides: list[str] | None = None) -> dict:
    """A YAML mapping with ``key.path=value`` overrides applied (before it becomes a config:
    e.g. to read which task's config class it is)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return apply_overrides(data, overrides)


def save_config(cfg: Any, path: str | Path) -> None:
    """Writes a config as YAML (key order as in the dataclass)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
