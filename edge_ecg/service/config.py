"""The daemon's configuration: a TOML file checked completely before anything starts.

Every error is a ``ConfigError`` naming the file, the key and the allowed values, because the
person reading it is a device engineer at a bedside with no debugger. Relative paths resolve
against the config file's folder, so a config and its bundles can move together.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge_ecg.alarms.conditions import CATALOG, Priority
from edge_ecg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

BACKENDS = ("auto", "onnxruntime", "tensorrt")
PRECISIONS = ("int8", "fp32")
ROLES = ("findings", "triage")


@dataclass(frozen=True)
class BundleConfig:
    path: Path
    role: str = "findings"  # findings: labels become alarm conditions; triage: judge classical alarms
    window_s: float | None = None  # None = the bundle's own
    hop_s: float | None = None
    backend: str = "auto"
    precision: str = "int8"
    threads: int | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    smoothing: int = 1  # windows averaged before a threshold is applied
    triage_label: str | None = None  # triage: the label meaning "this alarm is true" (default: first)
    trust: Any = None  # edge_ecg.signing.TrustPolicy from [trust]: load_bundle checks the signature


@dataclass(frozen=True)
class TriageConfig:
    enabled: bool = True
    conditions: tuple[str, ...] = ("ventricular_tachycardia",)
    max_steps: int = 1
    floor: Priority = Priority.MEDIUM
    annotate_only: bool = False


@dataclass(frozen=True)
class AlarmConfig:
    audio_pause_s: float = 120.0
    priorities: Mapping[str, Priority] = field(default_factory=dict)
    triage: TriageConfig = field(default_factory=TriageConfig)
    signal_lost_s: float = 2.0  # no samples for this long (wall time) = signal lost
    min_window_quality: float | None = None  # None = the DSP's own usable flag


@dataclass(frozen=True)
class SinkConfig:
    state_dir: Path = Path("state")
    stdout: bool = True
    evidence: bool = True
    hook: tuple[str, ...] = ()
    hook_timeout_s: float = 5.0
    control_socket: Path | None = None  # None = <state_dir>/control.sock
    hook_workers: int = 3  # concurrent hook calls; one of them reserved for high-priority changes
    hook_max_pending: int = 64  # medium/low changes waiting (high ones are never dropped)
    storage_budget_mb: float = 256.0  # evidence + event-log segments; oldest evidence pruned first
    storage_reserve_mb: float = 16.0  # free space kept on the state filesystem (both shrink to fit a small one)

    @property
    def event_log(self) -> Path:
        return self.state_dir / "events.jsonl"

    @property
    def socket_path(self) -> Path:
        return self.control_socket if self.control_socket is not None else self.state_dir / "control.sock"


@dataclass(frozen=True)
class ServiceConfig:
    stall_s: float = 30.0  # no progress for this long (wall time) stops watchdog pings
    queue_blocks: int = 256
    ring_s: float = 60.0


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


class _Table:
    """Typed access to one TOML table with errors naming ``file: table.key``."""

    def __init__(self, origin: str, prefix: str, data: Any, known: set[str]) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{origin}: {prefix.rstrip('.')}", f"must be a table, got {type(data).__name__}")
        self.origin, self.prefix, self.data = origin, prefix, data
        for key in data:
            if key not in known:
                raise ConfigError(self.where(key), f"unknown key (allowed: {', '.join(sorted(known))})")

    def where(self, key: str) -> str:
        return f"{self.origin}: {self.prefix}{key}"

    def number(self, key: str, default: Any, *, minimum: float | None = None, positive: bool = False, integer: bool = False) -> Any:
        if key not in self.data:
            return default
        v = self.data[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise ConfigError(self.where(key), f"must be {'an integer' if integer else 'a number'}, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(self.where(key), f"must be a finite number, got {v!r}")
        if positive and v <= 0:
            raise ConfigError(self.where(key), f"must be > 0, got {v!r}")
        if minimum is not None and v < minimum:
            raise ConfigError(self.where(key), f"must be >= {minimum}, got {v!r}")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self.data.get(key, default)
        if not isinstance(v, bool):
            raise ConfigError(self.where(key), f"must be true or false, got {v!r}")
        return v

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        v = self.data.get(key, default)
        if v not in allowed:
            raise ConfigError(self.where(key), f"{v!r} is not allowed (allowed: {', '.join(allowed)})")
        return v

    def string(self, key: str, default: str | None) -> str | None:
        v = self.data.get(key, default)
        if v is not None and not isinstance(v, str):
            raise ConfigError(self.where(key), f"must be a string, got {v!r}")
        return v

    def priority(self, key: str, value: Any) -> Priority:
        try:
            return Priority.parse(value)
        except ValueError:
            raise ConfigError(self.where(key), f"{value!r} is not a priority (allowed: high, medium, low)") from None


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


def parse_trust(raw: Any, origin: str, base: Path):
    """``[trust]``: ``keys`` (folder of trusted public keys, default the unit's trust folder) and
    ``require_signature`` (default false: development and ``make demo`` load unsigned bundles;
    the installed config sets it true)."""
    from edge_ecg.paths import install_paths
    from edge_ecg.signing import TrustPolicy

    t = _Table(origin, "trust.", raw, {"keys", "require_signature"})
    keys = t.string("keys", None)
    return TrustPolicy(keys_dir=_path(base, keys) if keys else install_paths().trust_dir, required=t.boolean("require_signature", False))


def config_from_dict(data: Mapping[str, Any], origin: str = "<config>", base: Path | None = None) -> DaemonConfig:
    """Validate a parsed TOML document into a ``DaemonConfig``; the first problem raises ``ConfigError``."""
    base = base or Path.cwd()
    top = _Table(origin, "", data, _TOP)
    if "source" not in data:
        raise ConfigError(top.where("source"), "missing (e.g. source = \"serial:/dev/edge-ecg-cart\" or \"replay:RECORD?speed=10\")")
    source = parse_source(data["source"], top.where("source"))
    if source.startswith("replay:"):
        path, _, query = source[len("replay:") :].partition("?")
        source = f"replay:{_path(base, path)}" + (f"?{query}" if query else "")

    trust = parse_trust(data.get("trust", {}), origin, base)
    bundles = []
    raw_bundles = data.get("bundle", [])
    if isinstance(raw_bundles, Mapping):
        raw_bundles = [raw_bundles]
    if not isinstance(raw_bundles, list):
        raise ConfigError(top.where("bundle"), "must be an array of tables ([[bundle]])")
    bkeys = {"path", "role", "window_s", "hop_s", "backend", "precision", "threads", "thresholds", "smoothing", "triage_label"}
    for i, raw in enumerate(raw_bundles):
        t = _Table(origin, f"bundle[{i}].", raw, bkeys)
        path = t.string("path", None)
        if not path:
            raise ConfigError(t.where("path"), "missing: the bundle directory")
        thresholds = raw.get("thresholds", {})
        if not isinstance(thresholds, Mapping) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in thresholds.values()):
            raise ConfigError(t.where("thresholds"), "must be a table of label = probability in [0, 1]")
        threads = t.number("threads", None, positive=True, integer=True)
        bundles.append(
            BundleConfig(
                path=_path(base, path),
                role=t.choice("role", "findings", ROLES),
                window_s=t.number("window_s", None, positive=True),
                hop_s=t.number("hop_s", None, positive=True),
                backend=t.choice("backend", "auto", BACKENDS),
                precision=t.choice("precision", "int8", PRECISIONS),
                threads=threads,
                thresholds={str(k): float(v) for k, v in thresholds.items()},
                smoothing=t.number("smoothing", 1, positive=True, integer=True),
                triage_label=t.string("triage_label", None),
                trust=trust,
            )
        )
        b = bundles[-1]
        if b.window_s is not None and b.hop_s is not None and b.hop_s > b.window_s:
            raise ConfigError(t.where("hop_s"), f"hop {b.hop_s} s is longer than the window {b.window_s} s")

    dsp = data.get("dsp", {})
    if not isinstance(dsp, Mapping):
        raise ConfigError(top.where("dsp"), "must be a table")
    from edge_ecg.dsp.config import AnalyzerConfig

    AnalyzerConfig.from_dict(dsp, source=f"{origin}: dsp")  # validates its own keys and names them

    a = _Table(origin, "alarms.", data.get("alarms", {}), {"audio_pause_s", "priorities", "triage", "signal_lost_s", "min_window_quality"})
    prio_raw = a.data.get("priorities", {})
    pt = _Table(origin, "alarms.priorities.", prio_raw, set(CATALOG))
    priorities = {k: pt.priority(k, v) for k, v in prio_raw.items()}
    tt = _Table(origin, "alarms.triage.", a.data.get("triage", {}), {"enabled", "conditions", "max_steps", "floor", "annotate_only"})
    conditions = tt.data.get("conditions", list(TriageConfig.conditions))
    if not isinstance(conditions, list) or any(c not in CATALOG for c in conditions):
        raise ConfigError(tt.where("conditions"), f"must be a list of conditions (allowed: {', '.join(sorted(CATALOG))})")
    triage = TriageConfig(
        enabled=tt.boolean("enabled", True),
        conditions=tuple(conditions),
        max_steps=tt.number("max_steps", 1, minimum=0, integer=True),
        floor=tt.priority("floor", tt.data.get("floor", "medium")),
        annotate_only=tt.boolean("annotate_only", False),
    )
    mq = a.number("min_window_quality", None, minimum=0)
    if mq is not None and mq > 1:
        raise ConfigError(a.where("min_window_quality"), f"must be in [0, 1], got {mq}")
    alarms = AlarmConfig(
        audio_pause_s=a.number("audio_pause_s", 120.0, positive=True),
        priorities=priorities,
        triage=triage,
        signal_lost_s=a.number("signal_lost_s", 2.0, positive=True),
        min_window_quality=mq,
    )
    if alarms.audio_pause_s > 300:
        raise ConfigError(a.where("audio_pause_s"), f"{alarms.audio_pause_s} s is too long (allowed: up to 300 s; audio must come back)")

    s = _Table(origin, "sinks.", data.get("sinks", {}), {"state_dir", "stdout", "evidence", "hook", "hook_timeout_s", "control_socket",
                                                         "hook_workers", "hook_max_pending", "storage_budget_mb", "storage_reserve_mb"})
    hook = s.data.get("hook", [])
    if isinstance(hook, str):
        hook = [hook]
    if not isinstance(hook, list) or not all(isinstance(x, str) and x for x in hook):
        raise ConfigError(s.where("hook"), "must be a program path or a list [program, args...]")
    sock = s.string("control_socket", None)
    sinks = SinkConfig(
        state_dir=_path(base, s.string("state_dir", "state") or "state"),
        stdout=s.boolean("stdout", True),
        evidence=s.boolean("evidence", True),
        hook=tuple(hook),
        hook_timeout_s=s.number("hook_timeout_s", 5.0, positive=True),
        control_socket=_path(base, sock) if sock else None,
        hook_workers=s.number("hook_workers", 3, minimum=2, integer=True),
        hook_max_pending=s.number("hook_max_pending", 64, positive=True, integer=True),
        storage_budget_mb=s.number("storage_budget_mb", 256.0, positive=True),
        storage_reserve_mb=s.number("storage_reserve_mb", 16.0, minimum=0),
    )
    if len(os.fsencode(str(sinks.socket_path))) >= 108:
        raise ConfigError(s.where("control_socket"), f"socket path {sinks.socket_path} is longer than the 107 bytes AF_UNIX allows")

    sv = _Table(origin, "service.", data.get("service", {}), {"stall_s", "queue_blocks", "ring_s"})
    service = ServiceConfig(
        stall_s=sv.number("stall_s", 30.0, positive=True),
        queue_blocks=sv.number("queue_blocks", 256, positive=True, integer=True),
        ring_s=sv.number("ring_s", 60.0, positive=True),
    )
    longest = max([b.window_s or 10.0 for b in bundles] + [10.0])
    if service.ring_s < longest + 2:
        raise ConfigError(sv.where("ring_s"), f"{service.ring_s} s cannot hold the longest window ({longest} s) plus a hop")
    from edge_ecg.display.settings import AUDIO_KEYS, DISPLAY_KEYS, parse_audio, parse_display

    display = parse_display(_Table(origin, "display.", data["display"], DISPLAY_KEYS), base, _path) if "display" in data else None
    audio = parse_audio(_Table(origin, "audio.", data["audio"], AUDIO_KEYS)) if "audio" in data else None
    return DaemonConfig(source=source, bundles=tuple(bundles), dsp=dict(dsp), alarms=alarms, sinks=sinks, service=service, origin=origin,
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
