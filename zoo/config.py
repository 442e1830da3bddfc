"""Typed dataclass configs <-> plain dicts (JSON / YAML), strictly.

Why not dacite or jsonargparse: dacite silently accepts unknown keys unless configured and its
errors do not name the nested path; jsonargparse (used by LightningCLI for recipes) is heavier than
needed to read one ``config.json``. This module does one job: rebuild nested dataclasses from a dict
and name the full path of any unknown key or wrong type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

C = TypeVar("C")


class ConfigError(ValueError):
    """A config dict does not match its dataclass: the message names the key path."""


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) dataclass config."""
    return dataclasses.asdict(config)


def from_dict(cls: type[C], data: dict[str, Any], path: str = "") -> C:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields.

    Unknown keys and wrong types raise ``ConfigError`` naming the key path (``backbone.mixers.mamba.d_state``).
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path or cls.__name__}: expected a mapping for {cls.__name__}, got {type(data).__name__}"
        )
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(fields)}"
        raise ConfigError(f"unknown key '{_join(path, key)}' for {cls.__name__}{hint}")
    kwargs = {name: _convert(hints[name], value, _join(path, name)) for name, value in data.items()}
    return cls(**kwargs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {get_args(tp)}")
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = get_args(tp)[:1] or (Any,)
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type):
        if (tp is int and isinstance(value, bool)) or not isinstance(value, tp):
            raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
        return value
    raise ConfigError(f"{path}: unsupported annotation {tp!r}")  # pragma: no cover - a programming error


__all__ = ["ConfigError", "from_dict", "to_dict"]
_ = typing  # keep typing imported for get_type_hints on string annotations in other modules
