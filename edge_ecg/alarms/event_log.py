"""The append-only alarm event log: one JSON object per line, written and fsynced per state change.

Why hand-written: no library gives "append, fsync, and survive a torn last line" for JSONL, and
the whole of it is a few calls. Each record is written with one ``os.write`` on an ``O_APPEND``
descriptor followed by ``os.fsync``, so after SIGKILL or power loss the file holds every event
whose ``append`` returned, plus at most one torn line at the end. On open, a file not ending in a
newline is sealed with one (the torn bytes stay, as evidence, but can never glue onto the next
record), and readers skip lines that do not parse, counting them, instead of failing.

A disk that is full or failing never stops an alarm: a write that fails (ENOSPC, EIO, ...) is
undone (the file is truncated back, so no half line is left), the record stays in memory as the
log's *unsent tail* (in order, with its ``seq``), ``make_room`` is asked to free space (old
evidence, old segments) and the write retried once; ``append`` still returns the record, so the
console, hooks and display show the alarm. Every later ``append`` (and ``retry()``) writes the
tail first. The writer's health is reported to ``health`` (``failed``/``ok``), which the
daemon shows as the ``storage_failed`` technical alarm. With ``segment_bytes`` the live file is
rotated to ``events.jsonl.1`` (``.1`` -> ``.2`` ...) when it would grow past that size;
``read_all_events`` reads the segments in order.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

# Records held in memory while the disk refuses them (about 30 MB at most): days of alarm changes.
MAX_UNSENT = 100_000

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
    """Appends events to ``path`` (created with its folder); each ``append`` is durable when it returns
    (or, when the disk refuses it, held in the unsent tail and reported to ``health``).

    ``health``: an object with ``failed(writer, path, exc)`` and ``ok(writer)`` (the daemon's
    ``StorageHealth``); ``make_room(need_bytes) -> freed`` frees space when a write fails;
    ``segment_bytes``: rotate the live file past this size (None: never).
    """

    WRITER = "event_log"

    def __init__(self, path: str | os.PathLike[str], *, segment_bytes: int | None = None, keep_segments: int = 1000,
                 make_room: Callable[[int], int] | None = None, health: Any = None) -> None:
        self.path = Path(path)
        self.segment_bytes = segment_bytes
        self.keep_segments = keep_segments
        self.make_room = make_room
        self.health = health
        self.write_failures = 0
        self.unsent_dropped = 0
        self.rotations = 0
        self._unsent: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()
        self._fd = -1
        self.recovered_torn_bytes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            if created:
                _fsync_dir(self.path.parent)
            self.recovered_torn_bytes = self._seal_torn_tail()
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:  # a disk that refuses even this: start anyway, hold records in memory, retry
            self._report(exc)
        self._seq = self._last_seq() + 1

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next record will get."""
        return self._seq

    @property
    def unsent(self) -> int:
        """Records held in memory because the disk refused them."""
        return len(self._unsent)

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
        try:
            os.write(self._fd, b"\n")
            os.fsync(self._fd)
        except OSError as exc:  # a full disk at start-up: drop the torn bytes instead (truncation frees space)
            try:
                os.ftruncate(self._fd, size - torn)
            except OSError:
                self._report(exc)
        log.warning("event log %s: torn last line (%d bytes) from an interrupted write sealed and skipped", self.path, torn)
        return torn

    def _last_seq(self) -> int:
        seq = 0
        for path in (self.path, self.path.with_name(self.path.name + ".1")):
            for rec in iter_events(path):
                if isinstance(rec.get("seq"), int):
                    seq = max(seq, rec["seq"])
            if seq:
                break
        return seq

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record (adds ``seq`` and wall-clock ``wall``), fsync, and return what was written.

        Never raises for a disk problem: the record is then kept in the unsent tail (see the module
        docstring) and still returned."""
        with self._lock:
            full = {"seq": self._seq, "wall": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), **record}
            line = (json.dumps(full, separators=(",", ":"), default=_jsonable) + "\n").encode()
            self._seq += 1
            if len(self._unsent) >= MAX_UNSENT:
                self._unsent.popleft()
                self.unsent_dropped += 1
            self._unsent.append(line)
            self._flush_locked()
            return full

    def retry(self) -> int:
        """Try to write the unsent tail now (the daemon calls this every second); returns what is left."""
        with self._lock:
            if self._unsent:
                self._flush_locked()
            return len(self._unsent)

    def _flush_locked(self) -> None:
        while self._unsent:
            line = self._unsent[0]
            try:
                self._write_line(line)
            except OSError as exc:
                freed = self.make_room(len(line)) if self.make_room is not None else 0
                try:
                    if not freed:
                        raise exc
                    self._write_line(line)
                except OSError as exc2:
                    self.write_failures += 1
                    self._report(exc2)
                    return
            self._unsent.popleft()
        if self.health is not None:
            self.health.ok(self.WRITER)

    def _write_line(self, line: bytes) -> None:
        if self._fd < 0:
            self._reopen()
        if self.segment_bytes and self._size and self._size + len(line) > self.segment_bytes:
            self._rotate()
        before = self._size
        view = memoryview(line)
        try:
            while view:  # os.write may write less than asked (signals); loop until all is out
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
        except OSError:
            try:  # no half line may stay behind to glue onto the next record
                os.ftruncate(self._fd, before)
            except OSError:
                pass
            raise
        self._size = before + len(line)

    def _reopen(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        """events.jsonl -> events.jsonl.1 (older ones shift up); a fresh live file."""
        base = self.path.name
        for k in range(self.keep_segments, 0, -1):
            src = self.path.with_name(f"{base}.{k}")
            if src.exists():
                if k == self.keep_segments:
                    src.unlink()
                else:
                    os.replace(src, self.path.with_name(f"{base}.{k + 1}"))
        os.close(self._fd)
        self._fd = -1
        os.replace(self.path, self.path.with_name(f"{base}.1"))
        self._reopen()
        _fsync_dir(self.path.parent)
        self.rotations += 1

    def _report(self, exc: OSError) -> None:
        if self.health is not None:
            self.health.failed(self.WRITER, self.path, exc)
        else:
            log.error("event log %s: write failed (%s); %d record(s) held in memory", self.path, exc, len(self._unsent))

    def close(self) -> None:
        with self._lock:
            if self._unsent:
                try:
                    self._flush_locked()
                except OSError:
                    pass
            if self._unsent:
                log.error("event log %s: %d record(s) could not be written before closing", self.path, len(self._unsent))
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


def read_all_events(path: str | os.PathLike[str]) -> LogContents:
    """Every record of a rotated log: ``path.N`` ... ``path.1`` then ``path`` (skipped line numbers per file are not kept)."""
    path = Path(path)
    segments = sorted((int(p.name.rsplit(".", 1)[1]), p) for p in path.parent.glob(path.name + ".*") if p.name.rsplit(".", 1)[1].isdigit())
    events: list[dict[str, Any]] = []
    skipped: list[int] = []
    for _, p in sorted(segments, reverse=True) + [(0, path)]:
        c = read_events(p)
        events += c.events
        skipped += c.skipped
    return LogContents(events, skipped)
