"""The append-only alarm event log: one JSON object per line, written and fsynced per state change.

Why hand-written: no library gives "append, fsync, and survive a torn last line" for JSONL, and
the whole of it is a few calls. Each record is written with one ``os.write`` on an ``O_APPEND``
descriptor followed by ``os.fsync``, so after SIGKILL or power loss the file holds every event
whose ``append`` returned, plus at most one torn line at the end. On open, a file not ending in a
newline is sealed with one (the torn bytes stay, as evidence, but can never glue onto the next
record), and readers skip lines that do not parse, counting them, instead of failing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogContents:
    """What ``read_events`` found: the parsed records and the lines it had to skip."""

    events: list[dict[str, Any]]
    skipped: list[int]  # 1-based line numbers that did not parse (torn writes)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class EventLog:
    """Appends events to ``path`` (created with its folder); each ``append`` is durable when it returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lock = threading.Lock()
        if created:
            _fsync_dir(self.path.parent)
        self.recovered_torn_bytes = self._seal_torn_tail()
        self._seq = self._last_seq() + 1

    def _seal_torn_tail(self) -> int:
        """A last line without its newline was torn by a crash: end it so the next record starts clean."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0
        with open(self.path, "rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
        if tail.endswith(b"\n"):
            return 0
        torn = len(tail) - (tail.rfind(b"\n") + 1)
        os.write(self._fd, b"\n")
        os.fsync(self._fd)
        log.warning("event log %s: torn last line (%d bytes) from an interrupted write sealed and skipped", self.path, torn)
        return torn

    def _last_seq(self) -> int:
        seq = 0
        for rec in iter_events(self.path):
            if isinstance(rec.get("seq"), int):
                seq = max(seq, rec["seq"])
        return seq

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record (adds ``seq`` and wall-clock ``wall``), fsync, and return what was written."""
        with self._lock:
            full = {"seq": self._seq, "wall": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), **record}
            line = (json.dumps(full, separators=(",", ":"), default=_jsonable) + "\n").encode()
            view = memoryview(line)
            while view:  # os.write may write less than asked (signals); loop until all is out
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
            self._seq += 1
            return full

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and paths in evidence become plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def read_events(path: str | os.PathLike[str]) -> LogContents:
    """Every record of the log in order; unparseable lines (torn writes) are skipped and counted."""
    events: list[dict[str, Any]] = []
    skipped: list[int] = []
    path = Path(path)
    if not path.exists():
        return LogContents(events, skipped)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                skipped.append(number)
                continue
            if isinstance(rec, dict):
                events.append(rec)
            else:
                skipped.append(number)
    return LogContents(events, skipped)


def iter_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    yield from read_events(path).events
