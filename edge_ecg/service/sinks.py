"""Where alarm events go: the fsynced event log, stdout for journald, hooks, evidence PNGs.

The order matters: the event log is written (and fsynced) first, so an event a hook or a
console line announced is always on disk (or, on a full or failing disk, held in the log's
unsent tail and the ``storage_failed`` alarm raised: the console, hooks and listeners still get
it). Evidence snapshots are rendered on their own thread (a PNG of ECG paper takes tens of
milliseconds); the path is decided up front so the logged event names it, and the state
directory's budget is kept before each one is written (oldest evidence deleted first).
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
from edge_ecg.service.storage import StateStorage, StorageHealth

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
    """Renders clinician snapshots on a worker thread; a full queue drops (and counts) the oldest.

    With ``storage``, room is made before each write (within the budget, keeping the free reserve:
    the oldest evidence goes first); a write the disk refuses is removed, retried once after making
    room, and reported to ``health``. Evidence is best effort: the alarm itself is already logged.
    """

    WRITER = "evidence"

    def __init__(self, folder: Path, max_pending: int = 8, storage: StateStorage | None = None, health: StorageHealth | None = None) -> None:
        self.folder = folder
        self.storage = storage
        self.health = health
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # retried at the first write
            self._failed(exc)
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self.last_size = 64 * 1024  # the next PNG's size, for making room before it is written
        self._failing = False
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._work, name="edge-ecg-evidence", daemon=True)
        self._thread.start()

    def submit(self, window, path: Path, title: str) -> None:
        try:
            self._queue.put_nowait((window, path, title))
        except queue.Full:
            self.dropped += 1
            log.warning("evidence queue full; snapshot %s not written", path.name)

    def _failed(self, exc: BaseException, path: Path | None = None) -> None:
        self._failing = True
        if self.health is not None and isinstance(exc, OSError):
            self.health.failed(self.WRITER, path or self.folder, exc)

    def probe(self) -> None:
        """After a refused write: report the disk healthy again once there is room for the next PNG."""
        if self._failing and self.storage is not None and self.storage.free_bytes() >= self.storage.budget.reserve_bytes + self.last_size:
            self._failing = False
            if self.health is not None:
                self.health.ok(self.WRITER)

    def _write(self, window, path: Path, title: str) -> None:
        from edge_ecg.render import snapshot_png

        for attempt in (0, 1):
            if self.storage is not None:
                self.storage.make_room(self.last_size)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                snapshot_png(window, path, title=title)
                self.last_size = max(4096, path.stat().st_size)
                self.written += 1
                if self._failing:
                    self._failing = False
                    if self.health is not None:
                        self.health.ok(self.WRITER)
                return
            except OSError as exc:
                try:
                    path.unlink()  # no truncated PNG left behind
                except OSError:
                    pass
                if attempt == 0 and self.storage is not None:
                    self.last_size *= 2
                    continue
                self.failed += 1
                self._failed(exc, path)
                log.warning("evidence snapshot %s failed: %s", path, exc)
                return

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            window, path, title = item
            try:
                self._write(window, path, title)
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
        self.note_listeners: list[Callable[[dict[str, Any]], None]] = []
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
        self.tell_listeners(written)
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
        _tell(self.note_listeners, written, "note")
        return written

    def tell_listeners(self, record: dict[str, Any]) -> None:
        """Hand a logged record to the alarm-event listeners (the display, the demo); a failing
        listener is logged and never stops the others or the alarm path."""
        _tell(self.listeners, record, "event")


def _tell(listeners, record: dict[str, Any], what: str) -> None:
    for listener in listeners:
        try:
            listener(record)
        except Exception as exc:
            log.warning("%s listener failed: %s", what, exc)
