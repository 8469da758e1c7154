"""One way to turn a TOML table into a frozen dataclass, refusing what it does not know.

Every configuration of the project (DSP, render spec, daemon, training, model sizes) is a
dataclass read from TOML. A typo in a key must not be ignored (a misspelt threshold would
silently fall back to its default at a bedside), and a wrong type must be reported with the file
and the key, so this module reads the dataclass's own type hints and converts or refuses each
value:

- ``float`` accepts integers (TOML ``1`` for ``1.0``), never booleans;
- ``int``, ``bool``, ``str`` are exact;
- ``tuple[X, ...]`` / ``tuple[X, Y]`` accept TOML arrays;
- ``X | None`` accepts the value or nothing (TOML has no null: the key is simply left out);
- a nested dataclass accepts a sub-table, read with the same rules;
- ``Mapping[str, X]`` / ``dict[str, X]`` accept a table of X;
- ``pathlib.Path`` accepts a string (relative to ``base`` when one is given);
- a class with a ``parse(value)`` classmethod (an enum such as ``Priority``) is parsed by it.

Field metadata adds bounds: ``field(default=..., metadata=bounds(minimum=0, positive=True,
choices=(...)))``. Non-finite numbers (``nan``, ``inf``) are refused unless ``finite=False``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from edge_ecg.errors import ConfigError

T = TypeVar("T")
_NONE = type(None)


def bounds(*, minimum: float | None = None, maximum: float | None = None, positive: bool = False,
           choices: tuple[Any, ...] | None = None, finite: bool = True, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Field metadata for ``from_table``: numeric bounds and allowed values (of a table field's
    values; ``keys``: the names a table field may hold)."""
    return {"config_bounds": {"minimum": minimum, "maximum": maximum, "positive": positive, "choices": choices, "finite": finite,
                              "keys": keys}}


NOT_CONFIG = {"config_internal": True}  # field metadata: set by the program, never read from TOML


def from_table(cls: type[T], table: Any, where: str, *, base: Path | None = None) -> T:
    """``cls`` built from ``table`` (a TOML table); errors are ``ConfigError`` naming ``where.key``.

    ``where`` names the file and table (``"/etc/edge-ecg/edge-ecg.toml: alarms"``); ``base`` is
    the folder that relative paths resolve against. A ``validate(where)`` method on ``cls`` is
    called after construction, for rules that span fields.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(table, Mapping):
        raise ConfigError(where, f"must be a table, got {_kind(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("config_internal")}
    unknown = [k for k in table if k not in fields]
    if unknown:
        raise ConfigError(_at(where, unknown[0]), f"unknown key (allowed: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in table.items():
        f = fields[name]
        kwargs[name] = _convert(value, hints[name], _at(where, name), base, f.metadata.get("config_bounds"))
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(_at(where, missing[0]), "required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def to_table(obj: Any) -> Any:
    """A dataclass (or value inside one) as TOML-safe data: tuples become lists, paths strings,
    enums their names in lower case, ``None`` fields are left out (TOML has no null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is not None:
                out[f.name] = to_table(v)
        return out
    if isinstance(obj, Mapping):
        return {str(k): to_table(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (tuple, list)):
        return [to_table(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    label = getattr(obj, "label", None)
    if isinstance(label, str) and hasattr(type(obj), "parse"):
        return label
    return obj


# -- conversion -----------------------------------------------------------------------------------

def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where and not where.endswith(":") else f"{where} {key}".strip()


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        return typing.get_args(tp)
    return None


def _convert(value: Any, tp: Any, where: str, base: Path | None, limits: dict | None) -> Any:
    args = _union_args(tp)
    if args is not None:
        options = [a for a in args if a is not _NONE]
        if len(options) == 1:
            return _convert(value, options[0], where, base, limits)
        errors = []
        for option in options:
            try:
                return _convert(value, option, where, base, limits)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(where, "; ".join(errors))
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_table(tp, value, where, base=base)
    if origin is tuple:
        return _tuple(value, typing.get_args(tp), where, base, limits)
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(where, f"must be a table, got {_kind(value)}")
        vt = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        allowed = (limits or {}).get("keys")
        for k in value:
            if allowed is not None and k not in allowed:
                raise ConfigError(_at(where, str(k)), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return {str(k): _convert(v, vt, _at(where, str(k)), base, limits) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"must be an integer, got {value!r}")
        return _check(value, where, limits)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"must be a number, got {value!r}")
        return _check(float(value), where, limits)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"must be a string, got {value!r}")
        return _check(value, where, limits)
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(where, f"must be a path (a string), got {value!r}")
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() or base is None else base / p
    parse = getattr(tp, "parse", None)
    if callable(parse):
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
    raise TypeError(f"{where}: no TOML conversion for type {tp!r}")


def _tuple(value: Any, args: tuple[Any, ...], where: str, base: Path | None, limits: dict | None) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(where, f"must be an array, got {_kind(value)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], f"{where}[{i}]", base, limits) for i, v in enumerate(value))
    if args and len(value) != len(args):
        raise ConfigError(where, f"must have {len(args)} items, got {len(value)}")
    return tuple(_convert(v, a, f"{where}[{i}]", base, limits) for i, (v, a) in enumerate(zip(value, args or (Any,) * len(value))))


def _check(value: Any, where: str, limits: dict | None) -> Any:
    if not limits:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(where, f"must be a finite number, got {value!r}")
        return value
    if limits.get("choices") is not None and value not in limits["choices"]:
        raise ConfigError(where, f"{value!r} is not allowed (allowed: {', '.join(map(str, limits['choices']))})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if limits.get("finite", True) and not math.isfinite(value):
            raise ConfigError(where, f"must be a finite number, got {value!r}")
        if limits.get("positive") and value <= 0:
            raise ConfigError(where, f"must be > 0, got {value!r}")
        if limits.get("minimum") is not None and value < limits["minimum"]:
            raise ConfigError(where, f"must be >= {limits['minimum']}, got {value!r}")
        if limits.get("maximum") is not None and value > limits["maximum"]:
            raise ConfigError(where, f"must be <= {limits['maximum']}, got {value!r}")
    return value
