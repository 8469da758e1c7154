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
  silence it; the decision and its evidence are an event like any other.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from edge_ecg.alarms.conditions import CATALOG, Category, ConditionSpec, Priority


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

    kind: str  # raised | cleared | latched | reset | acknowledged | audio_paused | audio_resumed | breakthrough | triage | withheld | updated
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
        }


class AlarmManager:
    """Holds alarm states; every public method takes stream time ``t`` and returns the events it caused.

    Thread-safe (one lock): the pipeline thread feeds conditions, the control socket thread
    acknowledges and pauses. ``on_event`` (if given) is called for every event, under the lock,
    in order; sinks must therefore be quick (the event log's fsync is; hooks queue).
    """

    def __init__(
        self,
        *,
        audio_pause_s: float = 120.0,
        triage: TriageLimits | None = None,
        priorities: Mapping[str, Priority] | None = None,
        on_event: Callable[[AlarmEvent], None] | None = None,
    ) -> None:
        if audio_pause_s <= 0:
            raise ValueError("audio_pause_s must be > 0 (the pause must end)")
        self.audio_pause_s = float(audio_pause_s)
        self.triage_limits = triage or TriageLimits()
        self._priorities = dict(priorities or {})
        self._specs: dict[str, ConditionSpec] = dict(CATALOG)
        self._alarms: dict[str, AlarmState] = {}
        self._paused_until: float | None = None
        self._now = 0.0
        self._lock = threading.RLock()
        self._on_event = on_event
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
                    return events
                priority = self._priorities.get(name, spec.priority)
                if state is not None and state.latched:
                    # Re-onset of a latched alarm: active again, unacknowledged, sounds again.
                    state.active, state.latched, state.acknowledged = True, False, False
                    state.onset_t, state.evidence, state.priority = t, ev, priority
                else:
                    state = AlarmState(spec=spec, priority=priority, active=True, onset_t=t, evidence=ev)
                    self._alarms[name] = state
                self.counts[name] = self.counts.get(name, 0) + 1
                events.append(self._event("raised", t, state, ev))
                if priority is Priority.HIGH and (self._paused_until is not None or self._any_acknowledged()):
                    self._paused_until = None
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

        ``origin`` (who asked: ``{"via": "display", "remote": ...}``) is logged with each event."""
        by = {"origin": dict(origin)} if origin else {}
        with self._lock:
            t = self._now if t is None else t
            events = self._advance(t)
            names = [name] if name else list(self._alarms)
            if name and name not in self._alarms:
                raise KeyError(f"no alarm {name!r} to acknowledge (present: {', '.join(self._alarms) or 'none'})")
            for n in names:
                state = self._alarms[n]
                if state.latched:
                    del self._alarms[n]
                    events.append(self._event("reset", t, state, {"by": "acknowledge", **by}))
                elif not state.acknowledged:
                    state.acknowledged = True
                    events.append(self._event("acknowledged", t, state, dict(by)))
            return self._emit(events)

    def pause_audio(self, t: float | None = None, seconds: float | None = None, origin: Mapping[str, Any] | None = None) -> list[AlarmEvent]:
        """Pause all audio for ``seconds`` (default and maximum: ``audio_pause_s``); ``origin`` is logged."""
        by = {"origin": dict(origin)} if origin else {}
        with self._lock:
            t = self._now if t is None else t
            events = self._advance(t)
            seconds = self.audio_pause_s if seconds is None else min(float(seconds), self.audio_pause_s)
            if seconds <= 0:
                raise ValueError("pause seconds must be > 0")
            self._paused_until = t + seconds
            events.append(AlarmEvent("audio_paused", t, evidence={"until": round(self._paused_until, 4), "seconds": seconds, **by}, audio=self._audio_locked()))
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
        if self._paused_until is not None:
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
        return events


def is_technical(event: AlarmEvent) -> bool:
    return event.category == Category.TECHNICAL.value
