"""The daemon: config -> bundles loaded -> source open -> state restored -> pipeline -> READY=1 -> run.

What may stop the start (exit non-zero, message naming the file/key, before ``READY=1``): a bad
config and a source URI that cannot be opened. Nothing downstream of the classical alarm path
may: a bundle that fails to load or verify disables that model and raises ``model_unavailable``
(``run --check`` still fails loudly for installers); a full or failing state disk raises
``storage_failed`` (start-up works on a full disk); a crash is followed by a restart that brings
the alarm state back (``alarm-state.json``) with a ``restarted`` event naming what it restored.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

from edge_ecg.alarms.control import ControlServer, manager_handler
from edge_ecg.alarms.event_log import EventLog
from edge_ecg.alarms.hooks import HookRunner, HookStats
from edge_ecg.alarms.manager import AlarmManager, TriageLimits
from edge_ecg.errors import ConfigError
from edge_ecg.service.config import DaemonConfig
from edge_ecg.service.models import LoadedModels, UnavailableModel, load_models
from edge_ecg.service.pipeline import Pipeline
from edge_ecg.service.sd_notify import Notifier, Watchdog, watchdog_interval_s
from edge_ecg.service.sinks import EventSinks, EvidenceWriter
from edge_ecg.service.storage import STATE_FILE, AlarmStateFile, StateStorage, StorageHealth, budget_for

log = logging.getLogger(__name__)


def open_source(uri: str, where: str = "source"):
    """``serial:DEVICE`` -> ``SerialSource``; ``intellivue:DEVICE`` -> ``IntellivueSource``; ``replay:RECORD?...`` -> ``ReplaySource``."""
    kind, _, rest = uri.partition(":")
    if kind == "replay":
        from edge_ecg.stream.replay_source import ReplaySource

        return ReplaySource.from_uri(uri, where)
    if kind == "serial":
        from edge_ecg.stream.serial_source import SerialSource

        return SerialSource(rest)
    if kind == "intellivue":
        from edge_ecg.stream.intellivue_source import open_intellivue

        return open_intellivue(rest, where)
    raise ConfigError(where, f"{uri!r} is not a source (allowed: serial:DEVICE, intellivue:DEVICE, replay:RECORD)")


def load_slots(cfg: DaemonConfig) -> list:
    """Every configured bundle, strictly: the first that fails to load or verify raises (``--check``)."""
    return load_models(cfg.bundles, cfg.origin, strict=True, floors=cfg.alarms.models).slots


def check_config(cfg: DaemonConfig) -> list[str]:
    """What ``run --check`` prints: the config is valid and every bundle verifies and opens."""
    lines = [f"config {cfg.origin}: ok", f"source: {cfg.source}"]
    for slot in load_slots(cfg):
        lines.append(f"bundle {slot.name} {slot.bundle.version}: verified, {slot.backend} {slot.cfg.precision}, role {slot.cfg.role}, window {slot.window_s:g} s, hop {slot.hop_s:g} s, labels {', '.join(slot.labels)}")
        lines += [f"  {g.label}: {g.reason}" for g in slot.gates] if slot.cfg.role == "findings" else []
    lines.append(f"state: {cfg.sinks.state_dir} (events {cfg.sinks.event_log}), control socket {cfg.sinks.socket_path}")
    if cfg.display is not None and cfg.display.enabled:
        cfg.display.secret()
        lines.append(f"display: {cfg.display.listen} (or a socket from systemd), actions {'need the secret' if cfg.display.pin or cfg.display.token_file else 'disabled'}")
    if cfg.audio is not None and cfg.audio.enabled:
        lines.append(f"audio: ALSA device {cfg.audio.device} via aplay, bursts at {cfg.audio.level_dbfs:g} dBFS")
    return lines


@dataclass
class Daemon:
    """Everything a running daemon holds; ``close()`` shuts it down in order."""

    cfg: DaemonConfig
    manager: AlarmManager
    pipeline: Pipeline
    sinks: EventSinks
    event_log: EventLog
    evidence: EvidenceWriter | None
    hooks: HookRunner | None
    control: ControlServer | None
    notifier: Notifier
    watchdog: Watchdog | None = None
    evidence_n: int = 0
    display: Any = None  # edge_ecg.display.Display when [display] is configured
    sounder: Any = None  # edge_ecg.sound.AlarmSounder when [audio] is enabled
    storage: StateStorage | None = None
    health: StorageHealth = field(default_factory=StorageHealth)
    state_file: AlarmStateFile | None = None
    unavailable: list[UnavailableModel] = field(default_factory=list)
    ready: bool = False  # READY=1 sent: `bundle install` reads it (with windows classified) as healthy
    _housekeeping: threading.Thread | None = None
    _closing: threading.Event = field(default_factory=threading.Event)

    def housekeeping(self) -> None:
        """Once a second: write the event log's unsent tail, re-check a refused evidence disk, and
        persist the alarm state if the last save failed."""
        while not self._closing.wait(1.0):
            try:
                self.tick()
            except Exception:  # housekeeping must never take the daemon down
                log.exception("housekeeping failed")

    def relearn_rhythm(self, origin: Mapping[str, Any]) -> dict:
        """An operator's "the rhythm now is this patient's own" (control socket or display).
        Logged with who asked: it changes what the VT rule sees for the rest of the stream."""
        self.sinks.note("rhythm_relearn", origin=dict(origin), t=round(self.pipeline.stream_t, 3))
        return self.pipeline.request_relearn()

    def tick(self) -> None:
        self.event_log.retry()
        if self.evidence is not None:
            self.evidence.probe()
        if self.state_file is not None and self.health.failure() and any(f["writer"] == "alarm_state" for f in self.health.failure()["writers"]):
            self.state_file.save(self.manager.snapshot())

    def close(self) -> None:
        self._closing.set()
        self.notifier.stopping()
        if self.display is not None:
            self.display.close()
        self.pipeline.stop()
        self.pipeline.join(10)
        if self.sounder is not None:
            self.sounder.close()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self._housekeeping is not None:
            self._housekeeping.join(2)
        if self.control is not None:
            self.control.close()
        if self.evidence is not None:
            self.evidence.close()
        if self.hooks is not None:
            self.hooks.drain(5)
            self.hooks.close()
        self.sinks.note("stopped", **self.pipeline.stats.summary(self.pipeline.fs))
        if self.state_file is not None:
            self.state_file.save(self.manager.snapshot())
        self.event_log.close()
        self.notifier.close()


def build_daemon(cfg: DaemonConfig, *, slots: list | None = None, source: Any = None, stdout=sys.stdout, notifier: Notifier | None = None,
                 lossless: bool = False, unavailable: list[UnavailableModel] | None = None) -> Daemon:
    """Load, open and wire everything; nothing runs until ``start_daemon``.

    Fatal here: a source that cannot be opened and a control socket another daemon holds. A bundle
    that fails to load is not (``unavailable``; ``slots`` given = already loaded by the caller)."""
    from edge_ecg.buildinfo import build_info

    build = build_info()
    log.info("%s starting (python %s, pid %d, config %s)", build.line(), sys.version.split()[0], os.getpid(), cfg.origin)
    if slots is None:
        models = load_models(cfg.bundles, cfg.origin, floors=cfg.alarms.models)
    else:
        models = LoadedModels(list(slots), list(unavailable or []))
    source = open_source(cfg.source) if source is None else source
    state = cfg.sinks.state_dir
    state.mkdir(parents=True, exist_ok=True)
    health = StorageHealth()
    storage = StateStorage(state, budget_for(state, cfg.sinks.storage_budget_mb, cfg.sinks.storage_reserve_mb), health, cfg.sinks.event_log.name)
    storage.make_room()  # a disk left full by the last run: old evidence goes first
    event_log = EventLog(cfg.sinks.event_log, segment_bytes=storage.budget.segment_bytes, make_room=storage.make_room, health=health)
    sinks_ref: dict[str, EventSinks] = {}

    def hook_dropped(event: Mapping[str, Any], why: str, stats: HookStats) -> None:
        sinks_ref["s"].note("hook_dropped", dropped_seq=event.get("seq"), alarm=event.get("alarm"), event=event.get("kind"),
                            priority=event.get("priority"), reason=why, dropped_total=stats.dropped, coalesced_total=stats.coalesced)

    hooks = HookRunner(cfg.sinks.hook, cfg.sinks.hook_timeout_s, max_pending=cfg.sinks.hook_max_pending, workers=cfg.sinks.hook_workers,
                       on_drop=hook_dropped) if cfg.sinks.hook else None
    sinks = EventSinks(event_log, stdout=stdout if cfg.sinks.stdout else None, hook=hooks)
    sinks_ref["s"] = sinks
    evidence = EvidenceWriter(storage.evidence_dir, storage=storage, health=health) if cfg.sinks.evidence else None
    state_file = AlarmStateFile(state / STATE_FILE, health, storage)
    attach = getattr(source, "attach_event_sink", None)  # a monitor source logs the monitor's own alarms beside ours
    if attach is not None:
        attach(sinks.note)
    pending: dict[str, Any] = {}
    manager_ref: dict[str, AlarmManager] = {}

    tr = cfg.alarms.triage
    manager = AlarmManager(
        audio_pause_s=cfg.alarms.audio_pause_s,
        triage=TriageLimits(enabled=tr.enabled, conditions=tr.conditions, max_steps=tr.max_steps, floor=tr.floor, annotate_only=tr.annotate_only),
        priorities=cfg.alarms.priorities,
        on_event=lambda e: sinks(e, pending.pop(e.alarm, None) if e.kind == "raised" else None),
        on_change=lambda: state_file.save(manager_ref["m"].snapshot()),
    )
    manager_ref["m"] = manager
    daemon_ref: dict[str, Daemon] = {}
    for slot in models.slots:  # finding-only labels go to the event log (and listeners), never to the alarm manager
        slot.finding_sink = lambda kind, **fields: _note_to_all(sinks, kind, fields)

    def make_evidence(name: str, window) -> dict:
        if evidence is None or window is None:
            return {}
        d = daemon_ref["d"]
        d.evidence_n += 1
        safe = name.replace(":", "-").replace("/", "-")
        path = evidence.folder / f"{event_log.next_seq:06d}-{safe}-t{pipeline.stream_t:.0f}.png"
        evidence.submit(window, path, title=f"{name} at t={pipeline.stream_t:.1f} s")
        pending[name] = {"evidence_png": str(path)}
        return {}

    speed = getattr(source, "speed", 1.0) or 0.0
    pipeline = Pipeline(
        source,
        manager,
        slots=models.slots,
        dsp_config=dict(cfg.dsp),
        evidence=make_evidence,
        queue_blocks=cfg.service.queue_blocks,
        ring_s=cfg.service.ring_s,
        signal_lost_s=cfg.alarms.signal_lost_s,
        stall_s=cfg.service.stall_s,
        speed=speed,
        triage_conditions=cfg.alarms.triage.conditions,
        min_window_quality=cfg.alarms.min_window_quality,
        lossless=lossless,
        unavailable=models.unavailable,
        storage=health,
    )
    sinks.note("started", version=build.version, build=build.build_id, source=cfg.source, bundles=[f"{s.name}:{s.cfg.role}:{s.backend}:{s.cfg.precision}" for s in models.slots],
               unavailable=[m.to_dict() for m in models.unavailable], recovered_torn_bytes=event_log.recovered_torn_bytes,
               storage_budget_bytes=storage.budget.total_bytes, storage_reserve_bytes=storage.budget.reserve_bytes)
    snapshot, note = state_file.load()
    if snapshot is not None or note:
        manager.restore(snapshot or {"alarms": []}, note=note)  # the `restarted` event names what came back
    control = None

    def relearn(origin: Mapping[str, Any]) -> dict:
        return daemon_ref["d"].relearn_rhythm(origin)

    try:
        control = ControlServer(cfg.sinks.socket_path, manager_handler(manager, lambda: {**pipeline.stats.summary(pipeline.fs), **service_status(daemon_ref["d"])},
                                                                       audit=lambda rec: sinks.note(**rec), relearn=relearn))
    except OSError as exc:  # alarms sound and show without it; say so loudly
        log.error("control socket %s cannot be opened: %s; running without it", cfg.sinks.socket_path, exc)
        sinks.note("control_unavailable", path=str(cfg.sinks.socket_path), reason=str(exc))
    d = Daemon(cfg, manager, pipeline, sinks, event_log, evidence, hooks, control, notifier or Notifier(),
               storage=storage, health=health, state_file=state_file, unavailable=models.unavailable)
    daemon_ref["d"] = d
    attach_outputs(d)
    return d


def attach_outputs(d: Daemon) -> None:
    """The bedside display and the alarm sound, when the config has ``[display]`` / ``[audio]``."""
    cfg = d.cfg
    if cfg.audio is not None and cfg.audio.enabled:
        from edge_ecg.sound import AlarmSounder

        d.sounder = AlarmSounder(d.manager, cfg.sinks.state_dir / "sounds", cfg.audio)
        d.sinks.listeners.append(d.sounder.on_event)
    if cfg.display is not None and cfg.display.enabled:
        from edge_ecg.display import create_display

        d.display = create_display(cfg.display, d.manager, d.pipeline, d.sinks, cfg.sinks.state_dir,
                                   d.evidence.folder if d.evidence is not None else None, d.sounder,
                                   relearn=d.relearn_rhythm)


def service_status(d: Daemon) -> dict[str, Any]:
    """What the control socket's ``status`` adds for fleet tools and ``bundle install``'s health check:
    READY sent, the stream's rate and leads, and each loaded bundle with the windows it classified."""
    p = d.pipeline
    slots = list(p.slots) + ([p.triage_slot] if p.triage_slot is not None else [])
    hello = getattr(p.source, "hello", None)
    state = getattr(p.source, "state", None)
    return {
        "ready": d.ready,
        "pid": os.getpid(),
        "fs": p.fs,
        "leads": list(p.leads),
        "source_state": getattr(state, "value", None if state is None else str(state)),
        "hello": None if hello is None else {"device_id": hello.device_id, "firmware": ".".join(map(str, hello.firmware)), "fs": hello.fs, "leads": list(hello.leads)},
        "unavailable": [m.to_dict() for m in getattr(d, "unavailable", [])],
        "bundles": [{"name": s.name, "version": s.bundle.version, "role": s.cfg.role, "root": str(getattr(s.bundle, "root", "")), "windows": getattr(s, "windows", 0)} for s in slots],
    }


def _note_to_all(sinks: EventSinks, kind: str, fields: dict) -> dict:
    """A non-alarm event (a model finding) in the event log, then to the listeners (the demo)."""
    rec = sinks.note(kind, **fields)
    sinks.tell_listeners(rec)
    return rec


def start_daemon(d: Daemon, ready_timeout_s: float = 30.0) -> None:
    """Start the threads, wait for the first samples (source up), then ``READY=1`` and the watchdog."""
    if d.sounder is not None:
        d.sounder.start()
    if d.display is not None:
        d.display.start()
    d.pipeline.start()
    d._housekeeping = threading.Thread(target=d.housekeeping, name="edge-ecg-housekeeping", daemon=True)
    d._housekeeping.start()
    d.pipeline.first_block.wait(ready_timeout_s)
    state = "streaming" if d.pipeline.first_block.is_set() else "waiting for the cart"
    d.notifier.ready(f"{state}; {len(d.pipeline.slots) + (1 if d.pipeline.triage_slot else 0)} bundle(s)")
    d.ready = True
    interval = watchdog_interval_s()
    if interval is not None:
        d.watchdog = Watchdog(d.notifier, interval, d.pipeline.healthy, d.pipeline.status_line).start()


def run_daemon(cfg: DaemonConfig, duration_s: float | None = None) -> int:
    """``edge-ecg run``: until SIGTERM/SIGINT, the end of a replay, or ``duration_s`` of stream time."""
    d = build_daemon(cfg)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    start_daemon(d)
    try:
        while not stop.is_set() and not d.pipeline.done.is_set():
            stop.wait(0.2)
            if duration_s is not None and d.pipeline.stream_t >= duration_s:
                break
    finally:
        error = d.pipeline.error
        d.close()
    if error is not None:
        print(f"edge-ecg: pipeline failed: {error}", file=sys.stderr)
        return 1
    return 0
