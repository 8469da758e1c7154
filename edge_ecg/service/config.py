"""The daemon's configuration: a TOML file checked completely before anything starts.

Every error is a ``ConfigError`` naming the file, the key and the allowed values, because the
person reading it is a device engineer at a bedside with no debugger. Relative paths resolve
against the config file's folder, so a config and its bundles can move together.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge_ecg.alarms.conditions import CATALOG, Priority
from edge_ecg.config_table import NOT_CONFIG, bounds, from_table
from edge_ecg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

BACKENDS = ("auto", "onnxruntime", "tensorrt")
PRECISIONS = ("int8", "fp32")
ROLES = ("findings", "triage")


_CONDITIONS = tuple(sorted(CATALOG))


@dataclass(frozen=True)
class BundleConfig:
    """One ``[[bundle]]``."""

    path: Path
    role: str = field(default="findings", metadata=bounds(choices=ROLES))  # findings: labels become conditions; triage: judge classical alarms
    window_s: float | None = field(default=None, metadata=bounds(positive=True))  # None = the bundle's own
    hop_s: float | None = field(default=None, metadata=bounds(positive=True))
    backend: str = field(default="auto", metadata=bounds(choices=BACKENDS))
    precision: str = field(default="int8", metadata=bounds(choices=PRECISIONS))
    threads: int | None = field(default=None, metadata=bounds(positive=True))
    thresholds: Mapping[str, float] = field(default_factory=dict, metadata=bounds(minimum=0.0, maximum=1.0))  # label = probability
    smoothing: int = field(default=1, metadata=bounds(positive=True))  # windows averaged before a threshold is applied
    triage_label: str | None = None  # triage: the label meaning "this alarm is true" (default: first)
    trust: Any = field(default=None, metadata=NOT_CONFIG)  # edge_ecg.signing.TrustPolicy from [trust]

    def validate(self, where: str) -> None:
        if self.window_s is not None and self.hop_s is not None and self.hop_s > self.window_s:
            raise ConfigError(f"{where}.hop_s", f"hop {self.hop_s} s is longer than the window {self.window_s} s")


@dataclass(frozen=True)
class TriageConfig:
    enabled: bool = True
    conditions: tuple[str, ...] = field(default=("ventricular_tachycardia",), metadata=bounds(choices=_CONDITIONS))
    max_steps: int = field(default=1, metadata=bounds(minimum=0))
    floor: Priority = Priority.MEDIUM
    annotate_only: bool = False


@dataclass(frozen=True)
class ModelAlarmFloors:
    """``[alarms.models]``: what a model label must have been validated at to raise an alarm.

    ``basis = "estimate"`` compares the out-of-fold point estimates the bundle stores,
    ``"lower_bound"`` the lower ends of their 95% intervals (stricter)."""

    min_specificity: float = field(default=0.95, metadata=bounds(minimum=0.0, maximum=1.0))
    min_sensitivity: float = field(default=0.90, metadata=bounds(minimum=0.0, maximum=1.0))
    basis: str = field(default="estimate", metadata=bounds(choices=("estimate", "lower_bound")))


@dataclass(frozen=True)
class AlarmConfig:
    audio_pause_s: float = field(default=120.0, metadata=bounds(positive=True))
    priorities: Mapping[str, Priority] = field(default_factory=dict, metadata=bounds(keys=_CONDITIONS))
    triage: TriageConfig = field(default_factory=TriageConfig)
    signal_lost_s: float = field(default=2.0, metadata=bounds(positive=True))  # no samples this long (wall time) = signal lost
    min_window_quality: float | None = field(default=None, metadata=bounds(minimum=0.0, maximum=1.0))  # None = the DSP's usable flag
    models: ModelAlarmFloors = field(default_factory=ModelAlarmFloors)  # which model labels may alarm

    def validate(self, where: str) -> None:
        if self.audio_pause_s > 300:
            raise ConfigError(f"{where}.audio_pause_s", f"{self.audio_pause_s} s is too long (allowed: up to 300 s; audio must come back)")


@dataclass(frozen=True)
class SinkConfig:
    state_dir: Path = Path("state")  # relative: to the config file's folder
    stdout: bool = True
    evidence: bool = True
    hook: tuple[str, ...] = ()  # a program, or [program, args...]
    hook_timeout_s: float = field(default=5.0, metadata=bounds(positive=True))
    control_socket: Path | None = None  # None = <state_dir>/control.sock
    hook_workers: int = field(default=3, metadata=bounds(minimum=2))  # concurrent hook calls; one reserved for high priority
    hook_max_pending: int = field(default=64, metadata=bounds(positive=True))  # medium/low changes waiting (high never dropped)
    storage_budget_mb: float = field(default=256.0, metadata=bounds(positive=True))  # evidence + event log; oldest evidence pruned first
    storage_reserve_mb: float = field(default=16.0, metadata=bounds(minimum=0.0))  # free space kept on the state filesystem

    @property
    def event_log(self) -> Path:
        return self.state_dir / "events.jsonl"

    @property
    def socket_path(self) -> Path:
        return self.control_socket if self.control_socket is not None else self.state_dir / "control.sock"

    def validate(self, where: str) -> None:
        if not all(self.hook):
            raise ConfigError(f"{where}.hook", "must be a program path or a list [program, args...]")
        if len(os.fsencode(str(self.socket_path))) >= 108:
            raise ConfigError(f"{where}.control_socket", f"socket path {self.socket_path} is longer than the 107 bytes AF_UNIX allows")


@dataclass(frozen=True)
class ServiceConfig:
    stall_s: float = field(default=30.0, metadata=bounds(positive=True))  # no progress this long (wall time) stops watchdog pings
    queue_blocks: int = field(default=256, metadata=bounds(positive=True))
    ring_s: float = field(default=60.0, metadata=bounds(positive=True))


@dataclass(frozen=True)
class DaemonConfig:
    source: str
    bundles: tuple[BundleConfig, ...] = ()
    dsp: Mapping[str, Any] = field(default_factory=dict)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    sinks: SinkConfig = field(default_factory=SinkConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    origin: str = "<config>"
    display: Any = None  # edge_ecg.display.settings.DisplayConfig (None = no [display] table: no display)
    audio: Any = None  # edge_ecg.sound.SoundConfig (None = no [audio] table: silent)
    trust: Any = None  # edge_ecg.signing.TrustPolicy


_TOP = {"source", "bundle", "dsp", "alarms", "sinks", "service", "display", "audio", "trust"}


def _path(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def parse_source(uri: Any, where: str) -> str:
    """``serial:/dev/...``, ``intellivue:/dev/...[?waves=I,II,PLETH]`` or ``replay:RECORD[?speed=X]``;
    checked for form here, opened later."""
    if not isinstance(uri, str) or not uri:
        raise ConfigError(where, "must be a string: serial:DEVICE, intellivue:DEVICE or replay:RECORD[?speed=X]")
    kind, sep, rest = uri.partition(":")
    if not sep or kind not in ("serial", "replay", "intellivue") or not rest:
        raise ConfigError(where, f"{uri!r} is not a source (allowed: serial:/dev/DEVICE, intellivue:/dev/DEVICE[?waves=I,II,PLETH], "
                                 "replay:RECORD[?speed=X&start=S&stop=S&loop=N])")
    if kind == "replay":
        from edge_ecg.stream.replay_source import ReplaySpec

        ReplaySpec.parse(uri, where)
    if kind == "intellivue":
        from edge_ecg.stream.intellivue_source import check_uri

        check_uri(rest, where)
    return uri


@dataclass(frozen=True)
class TrustTable:
    """``[trust]``: ``keys`` (folder of trusted public keys, default the unit's trust folder) and
    ``require_signature`` (default false: development and ``make demo`` load unsigned bundles;
    the installed config sets it true)."""

    keys: Path | None = None
    require_signature: bool = False


def parse_trust(raw: Any, origin: str, base: Path):
    from edge_ecg.paths import install_paths
    from edge_ecg.signing import TrustPolicy

    t = from_table(TrustTable, raw, f"{origin}: trust", base=base)
    return TrustPolicy(keys_dir=t.keys or install_paths().trust_dir, required=t.require_signature)


def _where(origin: str, key: str) -> str:
    return f"{origin}: {key}"


def config_from_dict(data: Mapping[str, Any], origin: str = "<config>", base: Path | None = None) -> DaemonConfig:
    """Validate a parsed TOML document into a ``DaemonConfig``; the first problem raises ``ConfigError``.

    Each table is read by ``config_table.from_table`` into its dataclass (types, bounds, unknown
    keys); what spans tables (the ring holding the longest window) is checked here."""
    base = base or Path.cwd()
    if not isinstance(data, Mapping):
        raise ConfigError(origin, "must be a TOML table")
    unknown = [k for k in data if k not in _TOP]
    if unknown:
        raise ConfigError(_where(origin, unknown[0]), f"unknown key (allowed: {', '.join(sorted(_TOP))})")
    if "source" not in data:
        raise ConfigError(_where(origin, "source"), "missing (e.g. source = \"serial:/dev/edge-ecg-cart\" or \"replay:RECORD?speed=10\")")
    source = parse_source(data["source"], _where(origin, "source"))
    if source.startswith("replay:"):
        path, _, query = source[len("replay:") :].partition("?")
        source = f"replay:{_path(base, path)}" + (f"?{query}" if query else "")

    trust = parse_trust(data.get("trust", {}), origin, base)
    raw_bundles = data.get("bundle", [])
    if isinstance(raw_bundles, Mapping):
        raw_bundles = [raw_bundles]
    if not isinstance(raw_bundles, list):
        raise ConfigError(_where(origin, "bundle"), "must be an array of tables ([[bundle]])")
    bundles = tuple(dataclasses.replace(from_table(BundleConfig, raw, f"{origin}: bundle[{i}]", base=base), trust=trust)
                    for i, raw in enumerate(raw_bundles))

    dsp = data.get("dsp", {})
    if not isinstance(dsp, Mapping):
        raise ConfigError(_where(origin, "dsp"), "must be a table")
    from edge_ecg.dsp.config import AnalyzerConfig

    AnalyzerConfig.from_dict(dsp, source=f"{origin}: dsp")  # the analyzer's own dataclasses, checked the same way
    alarms = from_table(AlarmConfig, data.get("alarms", {}), f"{origin}: alarms")

    sinks_raw = data.get("sinks", {})
    if isinstance(sinks_raw, Mapping) and isinstance(sinks_raw.get("hook"), str):
        sinks_raw = {**sinks_raw, "hook": [sinks_raw["hook"]]}  # one program without arguments
    if isinstance(sinks_raw, Mapping) and "state_dir" not in sinks_raw:
        sinks_raw = {**sinks_raw, "state_dir": "state"}  # the default, next to the config file too
    sinks = from_table(SinkConfig, sinks_raw, f"{origin}: sinks", base=base)

    service = from_table(ServiceConfig, data.get("service", {}), f"{origin}: service")
    longest = max([b.window_s or 10.0 for b in bundles] + [10.0])
    if service.ring_s < longest + 2:
        raise ConfigError(_where(origin, "service.ring_s"), f"{service.ring_s} s cannot hold the longest window ({longest} s) plus a hop")
    from edge_ecg.display.settings import parse_audio, parse_display

    display = parse_display(data["display"], f"{origin}: display", base) if "display" in data else None
    audio = parse_audio(data["audio"], f"{origin}: audio") if "audio" in data else None
    return DaemonConfig(source=source, bundles=bundles, dsp=dict(dsp), alarms=alarms, sinks=sinks, service=service, origin=origin,
                        display=display, audio=audio, trust=trust)


def load_config(path: str | os.PathLike[str]) -> DaemonConfig:
    """Read and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, f"cannot read config ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"not valid TOML: {exc}") from None
    return config_from_dict(data, origin=str(path), base=path.resolve().parent)
