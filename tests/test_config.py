"""Tests for the strict YAML -> dataclass loader."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from speechkit.config import (
    ConfigError,
    apply_overrides,
    fill_defaults,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


@dataclass
class Inner:
    width: int = 4
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"

    def __post_init__(self):
        if self.width <= 0:
            raise ConfigError(f"width must be positive, got {self.width}")


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    langs: list[str] = field(default_factory=lambda: ["eng"])
    betas: tuple[float, float] = (0.9, 0.98)
    limit: float | None = None


def test_nested_values_and_defaults():
    cfg = from_dict(Outer, {"inner": {"width": 8, "rate": 1}, "langs": ["deu", "fra"]})
    assert cfg.inner.width == 8
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.kind == "a"
    assert cfg.langs == ["deu", "fra"]
    assert cfg.betas == (0.9, 0.98)


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  widht: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, path)
    assert "inner.widht" in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        {"inner": {"width": "3"}},
        {"inner": {"width": 2.5}},
        {"inner": {"kind": "c"}},
        {"inner": {"width": True}},
        {"betas": [0.9]},
        {"langs": "eng"},
        {"limit": "none"},
    ],
)
def test_wrong_types_are_rejected(data):
    with pytest.raises(ConfigError):
        from_dict(Outer, data)


def test_post_init_rule_reports_where():
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, {"inner": {"width": 0}}, source="conf/x.yaml")
    assert "conf/x.yaml" in str(err.value) and "width must be positive" in str(err.value)


def test_round_trip_and_overrides(tmp_path):
    cfg = from_dict(Outer, {"name": "y", "limit": 2})
    path = tmp_path / "c.yaml"
    save_config(cfg, path)
    again = load_config(Outer, path, overrides=["inner.width=16", "limit=null", "langs=[spa]"])
    assert again.inner.width == 16 and again.limit is None and again.langs == ["spa"]
    assert to_dict(load_config(Outer, path)) == to_dict(cfg)


def test_exponent_without_dot_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  rate: 5e-3\n")  # PyYAML reads this as a string
    assert load_config(Outer, path).inner.rate == 0.005
    with pytest.raises(ConfigError):
        from_dict(Outer, {"inner": {"rate": "fast"}})


def test_bad_override_form():
    with pytest.raises(ConfigError):
        apply_overrides({}, ["no_equals_sign"])


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, path)


@dataclass
class Extra:
    depth: int = 2


@dataclass
class WithOptional:
    inner: Inner | None = None
    count: int = 1


def test_fill_defaults_gives_missing_fields_their_defaults_and_keeps_the_rest():
    stored = {"name": "y", "inner": {"width": 8}, "model_type": "s2t", "extra": {}}
    filled = fill_defaults(stored, Outer, {"extra": Extra})
    assert filled == {
        "name": "y",
        "inner": {"width": 8, "rate": 0.5, "kind": "a"},  # a present section: class defaults
        "langs": ["eng"],  # default_factory, as to_dict writes it
        "betas": [0.9, 0.98],
        "limit": None,
        "model_type": "s2t",  # not a field: kept, unchecked
        "extra": {"depth": 2},  # a section named by the caller
    }
    assert stored == {"name": "y", "inner": {"width": 8}, "model_type": "s2t", "extra": {}}
    # what is present is never replaced, even a value the class would reject
    assert fill_defaults({"inner": {"width": -1}}, Outer)["inner"]["width"] == -1
    assert fill_defaults({}, Outer) == to_dict(Outer())
    # an Optional section is filled where it is a mapping, left alone where it is None
    assert fill_defaults({"inner": {"rate": 1.0}}, WithOptional) == {
        "inner": {"width": 4, "rate": 1.0, "kind": "a"},
        "count": 1,
    }
    assert fill_defaults({}, WithOptional) == {"inner": None, "count": 1}
