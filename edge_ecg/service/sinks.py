"""Where alarm events go: the fsynced event log, stdout for journald, hooks, evidence PNGs.

The order matters: the event log is written (and fsynced) first, so an event a hook or a
console line announced is always on disk. Evidence snapshots are rendered on their own thread
(a PNG of ECG paper takes tens of milliseconds); the path is decided up front so the logged
event names it.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from edge_ecg.alarms.event_log import EventLog
from edge_ecg.alarms.hooks import HookRunner
from edge_ecg.alarms.manager import AlarmEvent

log = logging.getLogger(__name__)

# sd-daemon(3) priority prefixes journald turns into PRIORITY=: 2 crit, 3 err, 4 warning, 5 notice, 6 info.
_PREFIX = {"high": "<2>", "medium": "<3>", "low": "<4>"}


def journal_prefix(event: Mapping[str, Any]) -> str:
    if event.get("kind") in ("raised", "breakthrough", "latched"):
        return _PREFIX.get(str(event.get("priority")), "<5>")
    if event.get("kind") == "withheld":
        return "<4>"
    return "<5>" if event.get("alarm") else "<6>"


def format_line(record: Mapping[str, Any]) -> str:
    """One logfmt line (``key=value``), prefixed for journald."""
    parts = [f"event={record.get('kind')}"]
    for key in ("alarm", "priority", "category", "t", "audio", "evidence_png"):
        v = record.get(key)
        if v is not None:
            parts.append(f"{key}={v}")
    ev = record.get("evidence") or {}
    for key in ("decision", "reason", "p_true", "heart_rate", "leads", "onset_t", "window"):
        if key in ev:
            v = ev[key]
            parts.append(f"{key}={v!r}" if isinstance(v, str) and " " in v else f"{key}={v}")
    return journal_prefix(record) + "edge-ecg " + " ".join(parts)


class EvidenceWriter:
    """Renders clinician snapshots on a worker thread; a full queue drops (and counts) the oldest."""

    def __init__(self, folder: Path, max_pending: int = 8) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._work, name="edge-ecg-evidence", daemon=True)
        self._thread.start()

    def submit(self, window, path: Path, title: str) -> None:
        try:
            self._queue.put_nowait((window, path, title))
        except queue.Full:
            self.dropped += 1
            log.warning("evidence queue full; snapshot %s not written", path.name)

    def _work(self) -> None:
        from edge_ecg.render import snapshot_png

        while True:
            item = self._queue.get()
            if item is None:
                return
            window, path, title = item
            try:
                snapshot_png(window, path, title=title)
                self.written += 1
            except Exception as exc:  # evidence is best effort; the alarm itself is already logged
                self.failed += 1
                log.warning("evidence snapshot %s failed: %s", path, exc)
            finally:
                self._queue.task_done()

    def flush(self, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.02)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=5)


class EventSinks:
    """Fans an alarm event out: event log (fsync) -> stdout -> hook -> listeners."""

    def __init__(self, event_log: EventLog, *, stdout: TextIO | None = sys.stdout, hook: HookRunner | None = None) -> None:
        self.event_log = event_log
        self.stdout = stdout
        self.hook = hook
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.count = 0

    def __call__(self, event: AlarmEvent, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        record = event.to_dict()
        if extra:
            record.update(extra)
        written = self.event_log.append(record)
        self.count += 1
        if self.stdout is not None:
            try:
                self.stdout.write(format_line(written) + "\n")
                self.stdout.flush()
            except (OSError, ValueError):
                pass  # a closed stdout must not stop alarms
        if self.hook is not None:
            self.hook.submit(written)
        for listener in self.listeners:
            try:
                listener(written)
            except Exception as exc:
                log.warning("event listener failed: %s", exc)
        return written

    def note(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A daemon event that is not an alarm change (start, stop, model loaded) in the same log."""
        record = {"kind": kind, **fields}
        written = self.event_log.append(record)
        if self.stdout is not None:
            try:
                self.stdout.write("<6>edge-ecg " + " ".join(f"{k}={v}" for k, v in record.items()) + "\n")
                self.stdout.flush()
            except (OSError, ValueError):
                pass
        return written
