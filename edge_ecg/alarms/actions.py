"""Operator actions on the alarms (acknowledge, audio pause) and status: one API for every channel.

Why one place: the control socket and the bedside display both let someone silence an alarm, and
each such action must be validated the same way and say who did it. ``AlarmActions.perform``
takes the request and an ``origin`` (``{"via": "socket", "uid": 1000, "pid": 4242}`` from
SO_PEERCRED; the display passes ``{"via": "display", ...}``); the origin goes into every event
the action causes (so the event log names who acknowledged), and a refused action is written to
the log too (``audit``), with the reason.

Numbers are validated, never trusted: a pause must be a finite number of seconds > 0 (a NaN
pause would never end), at most ``MAX_PAUSE_REQUEST_S``; longer ones are cut to the manager's
``audio_pause_s`` (the config's maximum) and the reply says so.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from edge_ecg.alarms.manager import AlarmManager

COMMANDS = ("status", "ack", "pause", "relearn")
MAX_PAUSE_REQUEST_S = 3600.0
MAX_NAME = 200


class ActionError(ValueError):
    """A request that is refused: the message says what is wrong with it."""


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ActionError(f"seconds must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ActionError(f"seconds must be a finite number, got {value!r}")
    if value <= 0:
        raise ActionError(f"seconds must be > 0, got {value!r}")
    if value > MAX_PAUSE_REQUEST_S:
        raise ActionError(f"seconds must be at most {MAX_PAUSE_REQUEST_S:g}, got {value!r}")
    return float(value)


class AlarmActions:
    """Validated operator actions on ``manager``; ``perform(request, origin) -> reply``.

    ``status_extra()`` adds the pipeline's figures to ``status``; ``audit(record)`` is called for
    every refused action (the daemon writes it to the event log); ``relearn(origin)`` asks the
    rhythm analysis to learn the patient's dominant beat anew (None: this channel has none).
    """

    def __init__(self, manager: AlarmManager, status_extra: Callable[[], Mapping[str, Any]] | None = None,
                 audit: Callable[[dict[str, Any]], None] | None = None,
                 relearn: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None) -> None:
        self.manager = manager
        self.status_extra = status_extra
        self.audit = audit
        self.relearn = relearn

    def perform(self, request: Mapping[str, Any], origin: Mapping[str, Any]) -> dict[str, Any]:
        """Do one request; a bad one gets ``{"ok": false, "error": ...}`` (and is audited), never an exception."""
        cmd = request.get("cmd") if isinstance(request, Mapping) else None
        try:
            if cmd == "status":
                return self.status()
            if cmd == "ack":
                return self.acknowledge(request.get("alarm"), origin)
            if cmd == "pause":
                return self.pause(request.get("seconds"), origin)
            if cmd == "relearn":
                return self.relearn_rhythm(origin)
            raise ActionError(f"unknown command {cmd!r} (allowed: {', '.join(COMMANDS)})")
        except (ActionError, KeyError, ValueError, TypeError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            if self.audit is not None and cmd != "status":
                self.audit({"kind": "action_refused", "cmd": str(cmd)[:40], "error": str(msg), "origin": dict(origin)})
            return {"ok": False, "error": str(msg)}

    def status(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"ok": True, **self.manager.status()}
        if self.status_extra is not None:
            reply["pipeline"] = dict(self.status_extra())
        return reply

    def acknowledge(self, alarm: Any, origin: Mapping[str, Any]) -> dict[str, Any]:
        if alarm is not None and (not isinstance(alarm, str) or len(alarm) > MAX_NAME):
            raise ActionError(f"alarm must be an alarm name, got {str(alarm)[:60]!r}")
        events = self.manager.acknowledge(name=alarm or None, origin=origin)
        return {"ok": True, "events": [e.to_dict() for e in events], "audio": self.manager.audio()}

    def pause(self, seconds: Any, origin: Mapping[str, Any]) -> dict[str, Any]:
        asked = _seconds(seconds)
        events = self.manager.pause_audio(seconds=asked, origin=origin)
        reply: dict[str, Any] = {"ok": True, "events": [e.to_dict() for e in events], "audio": self.manager.audio()}
        if asked is not None and asked > self.manager.audio_pause_s:
            reply["note"] = f"pause cut to {self.manager.audio_pause_s:g} s (the configured maximum)"
        return reply

    def relearn_rhythm(self, origin: Mapping[str, Any]) -> dict[str, Any]:
        """The operator says the rhythm now is the patient's own: the analyzer learns its dominant
        beat anew. Why an action: a patient in bundle-branch block who is already fast at switch-on
        is alarmed as VT (a wide dominant beat never seen at a normal rate), and only a person can
        tell that it is conducted."""
        if self.relearn is None:
            raise ActionError("relearn is not available here: no rhythm analysis behind this channel")
        return {"ok": True, **dict(self.relearn(origin))}
