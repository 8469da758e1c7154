"""Training configs: one TOML file per bundle (``configs/<name>.toml``) and one for pretraining."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edge_ecg.config_table import from_table
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
    """``cls`` from a TOML table by the project's one reader (``config_table.from_table``):
    types converted or refused, an unknown key named (a typo must not be ignored)."""
    return from_table(cls, dict(table or {}), where)
