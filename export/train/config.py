"""Training configs: one TOML file per bundle (``configs/<name>.toml``) and one for pretraining."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from edge_ecg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; a missing file or bad TOML is a ConfigError naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"not valid TOML: {exc}") from None
    data["_path"] = str(path)
    return data


def dataclass_from(cls, table: dict[str, Any] | None, where: str):
    """Build ``cls`` from a TOML table, refusing unknown keys (a typo must not be ignored)."""
    table = dict(table or {})
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(where, f"unknown keys {unknown} (known: {sorted(names)})")
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(where, str(exc)) from None
