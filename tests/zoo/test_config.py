from dataclasses import dataclass, field
from typing import Literal

import pytest

from zoo.config import ConfigError, from_dict, to_dict


@dataclass
class Inner:
    size: int = 4
    kind: Literal["a", "b"] = "a"
    scale: float = 1.0


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    optional: Inner | None = None
    name: str = "x"


def test_round_trip_rebuilds_nested_dataclasses():
    cfg = Outer(inner=Inner(size=8, kind="b", scale=2.5), optional=Inner(size=1))
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert from_dict(Inner, {"scale": 3}).scale == 3.0
    with pytest.raises(ConfigError, match="size: expected int, got True"):
        from_dict(Inner, {"size": True})


def test_unknown_key_names_its_path_and_close_matches():
    with pytest.raises(ConfigError, match=r"unknown key 'inner.sise' for Inner; did you mean size"):
        from_dict(Outer, {"inner": {"sise": 3}})


def test_wrong_literal_and_type_name_the_key():
    with pytest.raises(ConfigError, match=r"inner.kind: 'c' is not one of \('a', 'b'\)"):
        from_dict(Outer, {"inner": {"kind": "c"}})
    with pytest.raises(ConfigError, match="name: expected str"):
        from_dict(Outer, {"name": 3})
