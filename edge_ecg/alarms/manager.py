"""The IEC 60601-1-8 alarm manager: conditions in, alarm states and audio out, every change an event.

Why a state machine of its own: the standard's rules interact (a latched alarm stays after its
condition ends until someone acknowledges it; audio may be paused only for a bounded time; a new
high-priority alarm must break through a pause), and every transition must be logged. The
manager is driven by *stream time* (sample index / fs) passed in by the caller, so replaying the
same record gives the same events, and tests are deterministic.

Rules implemented:
- priorities high / medium / low from the condition catalogue (or config overrides);
- high-priority physiological alarms latch: when the condition ends the alarm stays ("latched")
  until acknowledged;
- acknowledge silences an alarm until its condition ends (and resets a latched one);
- audio pause silences everything for ``audio_pause_s`` (default 120 s), then audio sounds again;
- a new high-priority alarm during a pause or over acknowledged alarms breaks through (the pause
  ends and it sounds);
- model findings (triage) may lower the priority of, or annotate, a classical alarm, but never
  by more steps than ``TriageLimits.max_steps`` nor below ``TriageLimits.floor``, and never
  silence it; the decision and its evidence are an event like any other;
- every operator action names its ``origin`` (which channel, which uid/pid) in its event;
- the whole state (active, latched, acknowledged, audio pause) is a JSON ``snapshot()`` that a
  restarted daemon hands to ``restore()``: the alarms come back marked ``restored`` and one
  ``restarted`` technical event names them, so a latched alarm never vanishes with a crash.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from edge_ecg.alarms.conditions import CATALOG, RESTARTED, Category, ConditionSpec, Priority

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class TriageLimits:
    """How far model findings may move a classical alarm (set by the site in config)."""

    enabled: bool = True
    conditions: tuple[str, ...] = ("ventricular_tachycardia",)
    max_steps: int = 1  # priority levels a triage may remove
    floor: Priority = Priority.MEDIUM  # never below this
    annotate_only: bool = False  # log the finding, never change priority


@dataclass(frozen=True)
class AlarmEvent:
    """One state change. ``t`` is stream time in seconds; ``kind`` says what happened."""

    kind: str  # raised | cleared | latched | reset | acknowledged | audio_paused | audio_resumed | breakthrough | triage | withheld | updated | restarted
    t: float
    alarm: str | None = None
    priority: str | None = None
    category: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    audio: str = "off"  # audio state after the event: sounding-<priority> | paused | off

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "t": round(float(self.t), 4),
            "alarm": self.alarm,
            "priority": self.priority,
            "category": self.category,
            "evidence": dict(self.evidence),
            "audio": self.audio,
        }


@dataclass
class AlarmState:
    """One alarm as the manager holds it (active or latched)."""

    spec: ConditionSpec
    priority: Priority
    active: bool
    onset_t: float
    latched: bool = False
    acknowledged: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    restored: bool = False  # carried over from before a restart (until its condition is seen again)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alarm": self.spec.name,
            "category": self.spec.category.value,
            "priority": self.priority.label,
            "default_priority": self.spec.priority.label,
            "active": self.active,
            "latched": self.latched,
            "acknowledged": self.acknowledged,
            "onset_t": round(self.onset_t, 4),
            "annotations": list(self.annotations),
            "restored": self.restored,
        }


class AlarmManager:
    """Holds alarm states; every public method takes stream time ``t`` and returns the events it caused.

    Thread-safe (one lock): the pipeline thread feeds conditions, the control socket thread
    acknowledges and pauses. ``on_event`` (if given) is called for every event, under the lock,
    in order; sinks must therefore be quick (the event log's fsync is; hooks queue).
    ``on_change`` (if given) is called once after each change that emitted events, under the
    lock: the daemon persists ``snapshot()`` there.
    """

    def __init__(
        self,
        *,
        audio_pause_s: float = 120.0,
        triage: TriageLimits | None = None,
        priorities: Mapping[str, Priority] | None = None,
        on_event: Callable[[AlarmEvent], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if not (isinstance(audio_pause_s, (int, float)) and math.isfinite(audio_pause_s) and audio_pause_s > 0):
            raise ValueError("audio_pause_s must be a finite number > 0 (the pause must end)")
        self.audio_pause_s = float(audio_pause_s)
        self.triage_limits = triage or TriageLimits()
        self._priorities = dict(priorities or {})
        self._specs: dict[str, ConditionSpec] = dict(CATALOG)
        self._alarms: dict[str, AlarmState] = {}
        self._paused_until: float | None = None
        self._pause_left: float | None = None  # a restored pause, anchored when the stream starts
        self._now = 0.0
        self._lock = threading.RLock()
        self._on_event = on_event
        self._on_change = on_change
        self.counts: dict[str, int] = {}

    # -- conditions ---------------------------------------------------------------------
    def register(self, spec: ConditionSpec) -> None:
        """Add a condition kind (model findings) to the catalogue."""
        with self._lock:
            self._specs[spec.name] = spec

    def spec(self, name: str) -> ConditionSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown alarm condition {name!r} (known: {', '.join(sorted(self._specs))})") from None

    def set_condition(
        self, name: str, active: bool, t: float, evidence: Mapping[str, Any] | None = None
    ) -> list[AlarmEvent]:
        """The condition ``name`` is (still) present or absent at stream time ``t``."""
        with self._lock:
            events = self._advance(t)
            spec = self.spec(name)
            state = self._alarms.get(name)
            ev = dict(evidence or {})
            if active:
                if state is not None and state.active:
                    state.restored = False  # seen again since the restart
                    return self._emit(events)
                priority = self._priorities.get(name, spec.priority)
                if state is not None and state.latched:
                    # Re-onset of a latched alarm: active again, unacknowledged, sounds again.
                    state.active, state.latched, state.acknowledged = True, False, False
                    state.onset_t, state.evidence, state.priority = t, ev, priority
                    state.restored = False
                else:
                    state = AlarmState(spec=spec, priority=priority, active=True, onset_t=t, evidence=ev)
                    self._alarms[name] = state
                self.counts[name] = self.counts.get(name, 0) + 1
                events.append(self._event("raised", t, state, ev))
                if priority is Priority.HIGH and (self._paused_until is not None or self._pause_left is not None or self._any_acknowledged()):
                    self._paused_until = None
                    self._pause_left = None
                    events.append(self._event("breakthrough", t, state, {"reason": "new high-priority alarm"}))
            else:
                if state is None or not state.active:
                    return events
                state.active = False
                if spec.latches and not state.acknowledged:
                    state.latched = True
                    events.append(self._event("latched", t, state, ev))
                else:
                    del self._alarms[name]
                    events.append(self._event("cleared", t, state, ev))
            return self._emit(events)

    def withheld(self, name: str, t: float, reason: str, evidence: Mapping[str, Any] | None = None) -> list[AlarmEvent]:
        """Log that a condition was detected but not raised (e.g. a rhythm alarm on a lead that is off)."""
        with self._lock:
            spec = self.spec(name)
            ev = {"reason": reason, **dict(evidence or {})}
            event = AlarmEvent("withheld", t, name, spec.priority.label, spec.category.value, ev, self._audio_locked())
            return self._emit([event])

    # -- operator actions ---------------------------------------------------------------
    def acknowledge(self, t: float | None = None, name: str | None = None, origin: Mapping[str, Any] | None = None) -> list[AlarmEvent]:
        """Acknowledge one alarm (or all): silence until its condition ends; resets latched alarms.

        ``origin`` (who asked: ``{"via": "socket", "uid": .., "pid": ..}`` or ``{"via": "display", ...}``) goes into every event."""
        with self._lock:
            t = self._now if t is None else t
            events = self._advance(t)
            names = [name] if name else list(self._alarms)
            if name and name not in self._alarms:
                raise KeyError(f"no alarm {name!r} to acknowledge (present: {', '.join(self._alarms) or 'none'})")
            who = {"origin": dict(origin)} if origin else {}
            for n in names:
                state = self._alarms[n]
                if state.latched:
                    del self._alarms[n]
                    events.append(self._event("reset", t, state, {"by": "acknowledge", **who}))
                elif not state.acknowledged:
                    state.acknowledged = True
                    events.append(self._event("acknowledged", t, state, who))
            return self._emit(events)

    def pause_audio(self, t: float | None = None, seconds: float | None = None, origin: Mapping[str, Any] | None = None) -> list[AlarmEvent]:
        """Pause all audio for ``seconds`` (default and maximum: ``audio_pause_s``).

        ``seconds`` must be a finite number > 0 (``ValueError`` otherwise: a NaN pause would never end)."""
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
                raise ValueError(f"pause seconds must be a finite number > 0, got {seconds!r}")
        with self._lock:
            t = self._now if t is None else t
            events = self._advance(t)
            seconds = self.audio_pause_s if seconds is None else min(float(seconds), self.audio_pause_s)
            self._paused_until = t + seconds
            self._pause_left = None
            ev: dict[str, Any] = {"until": round(self._paused_until, 4), "seconds": seconds}
            if origin:
                ev["origin"] = dict(origin)
            events.append(AlarmEvent("audio_paused", t, evidence=ev, audio=self._audio_locked()))
            return self._emit(events)

    def advance(self, t: float) -> list[AlarmEvent]:
        """Move stream time forward (ends an expired audio pause)."""
        with self._lock:
            return self._emit(self._advance(t))

    # -- model triage -------------------------------------------------------------------
    def triage(
        self, name: str, t: float, judged_false: bool, evidence: Mapping[str, Any]
    ) -> list[AlarmEvent]:
        """A model's verdict on a classical alarm: lower its priority within limits, or annotate it.

        ``judged_false`` = the model thinks the alarm is false. Within limits the alarm drops by
        at most ``max_steps`` levels and never below ``floor``; it is never cleared or silenced.
        The decision (applied or not, and why) is logged with ``evidence``.
        """
        with self._lock:
            events = self._advance(t)
            lim = self.triage_limits
            state = self._alarms.get(name)
            ev = dict(evidence)
            ev["judged_false"] = bool(judged_false)
            if state is None:
                ev["decision"] = "no-alarm"
                events.append(AlarmEvent("triage", t, name, None, None, ev, self._audio_locked()))
                return self._emit(events)
            before = state.priority
            if not judged_false:
                ev["decision"] = "confirmed"
            elif not lim.enabled or name not in lim.conditions:
                ev["decision"] = "annotated (triage not allowed for this condition by config)"
            elif lim.annotate_only:
                ev["decision"] = "annotated (config: annotate_only)"
            else:
                target = Priority(max(int(before) - max(0, lim.max_steps), int(lim.floor), int(Priority.LOW)))
                if target < before:
                    state.priority = target
                    ev["decision"] = f"lowered {before.label} -> {target.label}"
                else:
                    ev["decision"] = f"annotated (already at floor {lim.floor.label})"
            ev["priority_before"] = before.label
            state.annotations.append({"t": round(t, 4), **{k: v for k, v in ev.items() if k != "window"}})
            events.append(self._event("triage", t, state, ev))
            return self._emit(events)

    # -- restart ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything a restarted daemon needs to bring the alarms back (plain JSON)."""
        with self._lock:
            left = self._pause_left
            if self._paused_until is not None:
                left = max(0.0, self._paused_until - self._now)
            return {
                "version": SNAPSHOT_VERSION,
                "t": round(self._now, 4),
                "wall": time.time(),
                "pause_left_s": None if left is None else round(left, 3),
                "alarms": [
                    {**s.to_dict(), "description": s.spec.description, "evidence": s.evidence, "latches": s.spec.latches}
                    for s in self._alarms.values()
                ],
            }

    def restore(self, snapshot: Mapping[str, Any], *, down_s: float | None = None, note: str = "") -> list[AlarmEvent]:
        """Bring back the alarms of a ``snapshot()`` taken before a restart; one ``restarted`` event.

        Every alarm comes back as it was (active, latched, acknowledged, its priority) and marked
        ``restored``; an active one whose condition the new process does not see again is ended by
        the caller's policy as usual (a high-priority one then latches: it still needs an
        acknowledgement). An audio pause comes back with what was left of it, less the time the
        daemon was down (``down_s``, default from the snapshot's wall clock); it starts counting
        again when the stream starts (``start_stream``). Alarms of conditions this process does not
        know (a model no longer configured) are restored from the snapshot's own description.
        """
        with self._lock:
            restored, skipped = [], []
            for raw in snapshot.get("alarms", []) if isinstance(snapshot.get("alarms"), list) else []:
                try:
                    state = self._restore_one(raw)
                except (KeyError, TypeError, ValueError) as exc:
                    skipped.append({"alarm": raw.get("alarm") if isinstance(raw, Mapping) else None, "reason": str(exc)})
                    continue
                self._alarms[state.spec.name] = state
                flags = [f for f in ("active", "latched", "acknowledged") if getattr(state, f)]
                restored.append({"alarm": state.spec.name, "priority": state.priority.label, "state": ",".join(flags), "onset_t": round(state.onset_t, 4)})
            if down_s is None and isinstance(snapshot.get("wall"), (int, float)):
                down_s = max(0.0, time.time() - float(snapshot["wall"]))
            left = snapshot.get("pause_left_s")
            pause = None
            if isinstance(left, (int, float)) and math.isfinite(left):
                pause = min(float(left), self.audio_pause_s) - (down_s or 0.0)
                if pause > 0:
                    self._pause_left = pause
                    self._paused_until = None
            ev: dict[str, Any] = {"restored": restored, "down_s": None if down_s is None else round(down_s, 2),
                                  "audio_pause_left_s": round(pause, 2) if pause and pause > 0 else None}
            if skipped:
                ev["not_restored"] = skipped
            if note:
                ev["note"] = note
            event = AlarmEvent("restarted", self._now, RESTARTED.name, RESTARTED.priority.label, RESTARTED.category.value, ev)
            return self._emit([event])

    def _restore_one(self, raw: Mapping[str, Any]) -> AlarmState:
        name = str(raw["alarm"])
        spec = self._specs.get(name)
        if spec is None:  # a condition this process does not raise (model removed): keep it visible
            spec = ConditionSpec(name, Category(raw["category"]), Priority.parse(raw["default_priority"]), str(raw.get("description", "restored")),
                                 latching=bool(raw["latches"]) if "latches" in raw else None)
            self._specs[name] = spec
        active, latched, acked = bool(raw["active"]), bool(raw["latched"]), bool(raw["acknowledged"])
        if not (active or latched):
            raise ValueError("neither active nor latched")
        return AlarmState(spec=spec, priority=Priority.parse(raw["priority"]), active=active, onset_t=float(raw["onset_t"]), latched=latched,
                          acknowledged=acked, evidence=dict(raw.get("evidence") or {}), annotations=list(raw.get("annotations") or []), restored=True)

    def start_stream(self, t: float) -> list[AlarmEvent]:
        """The stream's first sample time in this process: stream time starts here (a restarted
        replay may start lower than before) and a restored audio pause starts counting down."""
        with self._lock:
            self._now = float(t)
            if self._pause_left is not None:
                self._paused_until = self._now + self._pause_left
                self._pause_left = None
            return self._emit(self._advance(t))

    def restored(self) -> list[str]:
        """Names of alarms restored at start-up whose condition has not been seen since."""
        with self._lock:
            return [n for n, s in self._alarms.items() if s.restored]

    # -- views --------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._now

    def audio(self) -> str:
        with self._lock:
            return self._audio_locked()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "t": round(self._now, 4),
                "audio": self._audio_locked(),
                "paused_until": None if self._paused_until is None else round(self._paused_until, 4),
                "pause_left_s": None if self._pause_left is None else round(self._pause_left, 3),
                "alarms": [s.to_dict() for s in sorted(self._alarms.values(), key=lambda s: (-s.priority, s.onset_t))],
                "counts": dict(self.counts),
            }

    def active(self) -> list[str]:
        with self._lock:
            return [n for n, s in self._alarms.items() if s.active]

    def state(self, name: str) -> AlarmState | None:
        with self._lock:
            s = self._alarms.get(name)
            return dataclasses.replace(s) if s else None

    # -- internals ----------------------------------------------------------------------
    def _advance(self, t: float) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        if t > self._now:
            self._now = t
        if self._paused_until is not None and self._now >= self._paused_until:
            until = self._paused_until
            self._paused_until = None
            events.append(AlarmEvent("audio_resumed", until, evidence={"reason": "pause expired"}, audio=self._audio_locked()))
        return events

    def _any_acknowledged(self) -> bool:
        return any(s.acknowledged for s in self._alarms.values())

    def _sounding(self) -> Iterable[AlarmState]:
        return (s for s in self._alarms.values() if (s.active or s.latched) and not s.acknowledged)

    def _audio_locked(self) -> str:
        top = max((s.priority for s in self._sounding()), default=None)
        if top is None:
            return "off"
        if self._paused_until is not None or self._pause_left is not None:
            return "paused"
        return f"sounding-{top.label}"

    def _event(self, kind: str, t: float, state: AlarmState, evidence: Mapping[str, Any]) -> AlarmEvent:
        return AlarmEvent(kind, t, state.spec.name, state.priority.label, state.spec.category.value, dict(evidence), self._audio_locked())

    def _emit(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        # Audio state is recomputed at emission so every event carries the state after the whole change.
        audio = self._audio_locked()
        events = [dataclasses.replace(e, audio=audio) for e in events]
        if self._on_event is not None:
            for e in events:
                self._on_event(e)
        if events and self._on_change is not None:
            self._on_change()
        return events


def is_technical(event: AlarmEvent) -> bool:
    return event.category == Category.TECHNICAL.value
