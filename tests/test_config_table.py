"""One TOML-table-to-dataclass reader: types converted or refused, unknown keys named, bounds."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pytest

from edge_ecg.config_table import bounds, from_table, to_table
from edge_ecg.errors import ConfigError


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3

    @classmethod
    def parse(cls, value):
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ValueError(f"{value!r} is not a level (allowed: low, high)")

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Inner:
    band_hz: tuple[float, float] = (3.0, 20.0)
    leads: tuple[str, ...] = ()
    level: Level = Level.LOW


@dataclass(frozen=True)
class Outer:
    name: str
    rate: float = field(default=1.0, metadata=bounds(positive=True))
    count: int = field(default=2, metadata=bounds(minimum=1, maximum=10))
    mode: str = field(default="a", metadata=bounds(choices=("a", "b")))
    enabled: bool = True
    limit: float | None = None
    state: Path = Path("state")
    inner: Inner = field(default_factory=Inner)
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if self.limit is not None and self.limit < self.rate:
            raise ConfigError(f"{where}.limit", "must be >= rate")


def test_types_are_converted_as_toml_writes_them(tmp_path):
    cfg = from_table(Outer, {"name": "x", "rate": 2, "limit": 5, "state": "st", "inner": {"band_hz": [1, 30], "leads": ["II"], "level": "high"},
                             "thresholds": {"af": 1}}, "f.toml: top", base=tmp_path)
    assert cfg.rate == 2.0 and isinstance(cfg.rate, float) and cfg.limit == 5.0
    assert cfg.state == tmp_path / "st"
    assert cfg.inner == Inner(band_hz=(1.0, 30.0), leads=("II",), level=Level.HIGH)
    assert cfg.thresholds == {"af": 1.0}


@pytest.mark.parametrize("table, where, words", [
    ({"name": "x", "rat": 1.0}, "f.toml: top.rat", "unknown key (allowed: count, enabled, inner"),
    ({"name": "x", "inner": {"bandhz": [1, 2]}}, "f.toml: top.inner.bandhz", "unknown key"),
    ({}, "f.toml: top.name", "required key is missing"),
    ({"name": "x", "rate": True}, "f.toml: top.rate", "must be a number"),
    ({"name": "x", "rate": -1}, "f.toml: top.rate", "must be > 0"),
    ({"name": "x", "rate": math.nan}, "f.toml: top.rate", "finite"),
    ({"name": "x", "limit": math.inf}, "f.toml: top.limit", "finite"),
    ({"name": "x", "count": 2.5}, "f.toml: top.count", "must be an integer"),
    ({"name": "x", "count": 11}, "f.toml: top.count", "must be <= 10"),
    ({"name": "x", "mode": "c"}, "f.toml: top.mode", "not allowed (allowed: a, b)"),
    ({"name": "x", "enabled": "yes"}, "f.toml: top.enabled", "true or false"),
    ({"name": "x", "inner": {"band_hz": [1, 2, 3]}}, "f.toml: top.inner.band_hz", "must have 2 items"),
    ({"name": "x", "inner": {"leads": ["II", 3]}}, "f.toml: top.inner.leads[1]", "must be a string"),
    ({"name": "x", "inner": {"level": "loud"}}, "f.toml: top.inner.level", "not a level"),
    ({"name": "x", "inner": 3}, "f.toml: top.inner", "must be a table"),
    ({"name": "x", "rate": 2.0, "limit": 1.0}, "f.toml: top.limit", "must be >= rate"),
])
def test_bad_tables_name_the_key_and_the_problem(table, where, words):
    with pytest.raises(ConfigError) as err:
        from_table(Outer, table, "f.toml: top")
    assert err.value.source == where
    assert words in err.value.problem


def test_round_trip_through_toml_safe_data():
    import sys
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    cfg = Outer(name="x", limit=4.0, inner=Inner(leads=("I", "II"), level=Level.HIGH), thresholds={"af": 0.5})
    data = to_table(cfg)
    assert "limit" in data and data["inner"]["level"] == "high" and data["inner"]["leads"] == ["I", "II"]
    text = "\n".join(f"{k} = {v!r}".replace("'", '"').replace("True", "true") for k, v in data.items() if not isinstance(v, dict))
    assert tomllib.loads(text)["name"] == "x"
    assert from_table(Outer, data, "t") == cfg


def test_table_keys_and_program_set_fields():
    from edge_ecg.config_table import NOT_CONFIG

    @dataclass(frozen=True)
    class Alarms:
        priorities: Mapping[str, str] = field(default_factory=dict, metadata=bounds(keys=("asystole", "noise")))
        player: str = field(default="aplay", metadata=NOT_CONFIG)

    assert from_table(Alarms, {"priorities": {"noise": "low"}}, "f.toml: alarms").priorities == {"noise": "low"}
    with pytest.raises(ConfigError, match=r"f.toml: alarms.priorities.vtach: unknown key \(allowed: asystole, noise\)"):
        from_table(Alarms, {"priorities": {"vtach": "high"}}, "f.toml: alarms")
    with pytest.raises(ConfigError, match=r"f.toml: alarms.player: unknown key"):  # set by the program, not by a config
        from_table(Alarms, {"player": "/bin/sh"}, "f.toml: alarms")
