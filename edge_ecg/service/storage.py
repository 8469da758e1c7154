"""The state directory on a disk that may fill up or fail: a size budget, pruning, health, the state file.

Why: evidence PNGs alone grow by megabytes per hour, and a bedside box runs for months on a small
eMMC. A write that fails (ENOSPC, EIO, EROFS, EDQUOT) must never stop an alarm: the writers
(event log, evidence, alarm state) report every outcome to ``StorageHealth``; the pipeline turns
a failure into the ``storage_failed`` technical alarm and clears it when writes succeed again.

``StateStorage.make_room`` keeps the directory under its budget and the filesystem above a free
reserve by deleting, in order: the oldest evidence PNGs, then the oldest *rotated* event-log
segments. Never the live event-log segment, and never the event log's unsent tail (records
still held in memory because the disk refused them; see ``EventLog``).

``AlarmStateFile`` persists the alarm manager's snapshot atomically (temporary file, fsync,
rename, fsync of the folder), so a restart after SIGKILL or power loss restores the alarms.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger(__name__)

EVIDENCE_DIR = "evidence"
STATE_FILE = "alarm-state.json"
MIN_SEGMENT = 16 * 1024
MAX_SEGMENT = 4 * 1024 * 1024


def errno_name(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, str(code)) if code is not None else type(exc).__name__


class StorageHealth:
    """The last outcome of each writer (thread-safe); ``failure()`` is what the alarm shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[str, dict[str, Any]] = {}
        self.failures = 0

    def failed(self, writer: str, path: os.PathLike[str] | str, exc: BaseException) -> None:
        with self._lock:
            first = writer not in self._failed
            self._failed[writer] = {"writer": writer, "path": os.fspath(path), "errno": errno_name(exc),
                                    "reason": f"{errno_name(exc)}: {getattr(exc, 'strerror', None) or exc}", "since_wall": time.time()}
            self.failures += 1
        if first:
            log.error("storage: %s cannot write %s: %s", writer, path, exc)

    def ok(self, writer: str) -> None:
        with self._lock:
            gone = self._failed.pop(writer, None)
        if gone is not None:
            log.warning("storage: %s writes again", writer)

    def failure(self) -> dict[str, Any] | None:
        """None while every writer's last write succeeded; else the failures, for the alarm's evidence."""
        with self._lock:
            if not self._failed:
                return None
            items = sorted(self._failed.values(), key=lambda f: f["since_wall"])
            return {"writers": [dict(f) for f in items], "reason": "; ".join(f"{f['writer']} {f['path']}: {f['reason']}" for f in items)}


@dataclass(frozen=True)
class Budget:
    """Bytes the state directory may use, and the free space to keep on its filesystem."""

    total_bytes: int
    reserve_bytes: int
    segment_bytes: int


def budget_for(root: Path, budget_mb: float, reserve_mb: float) -> Budget:
    """The configured budget, shrunk to fit the filesystem the state directory is on (a 200 kB
    tmpfs gets a budget and reserve it can honour, and event-log segments small enough to rotate)."""
    total = int(budget_mb * 1024 * 1024)
    reserve = int(reserve_mb * 1024 * 1024)
    try:
        st = os.statvfs(root)
        fs_bytes = st.f_blocks * st.f_frsize
    except OSError:
        fs_bytes = 0
    if fs_bytes:
        total = min(total, int(fs_bytes * 0.9))
        reserve = min(reserve, int(fs_bytes * 0.1))
    segment = max(MIN_SEGMENT, min(MAX_SEGMENT, total // 16))
    return Budget(total, reserve, segment)


class StateStorage:
    """Prunes the state directory (evidence first, then rotated log segments) to its budget."""

    def __init__(self, root: Path, budget: Budget, health: StorageHealth, event_log_name: str = "events.jsonl") -> None:
        self.root = Path(root)
        self.budget = budget
        self.health = health
        self.event_log_name = event_log_name
        self.deleted_files = 0
        self.deleted_bytes = 0
        self._lock = threading.Lock()

    @property
    def evidence_dir(self) -> Path:
        return self.root / EVIDENCE_DIR

    def _files(self) -> tuple[list[tuple[float, str, Path, int]], list[tuple[float, str, Path, int]], int]:
        """(evidence oldest first, rotated log segments oldest first, bytes of everything else)."""
        evidence, segments, other = [], [], 0
        try:
            entries = list(os.scandir(self.evidence_dir))
        except OSError:
            entries = []
        for e in entries:
            try:
                if e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    evidence.append((st.st_mtime, e.name, Path(e.path), st.st_size))
            except OSError:
                continue
        try:
            top = list(os.scandir(self.root))
        except OSError:
            top = []
        prefix = self.event_log_name + "."
        for e in top:
            try:
                if not e.is_file(follow_symlinks=False):
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if e.name.startswith(prefix) and e.name[len(prefix):].isdigit():
                segments.append((-int(e.name[len(prefix):]), e.name, Path(e.path), st.st_size))  # .3 is older than .1
            else:
                other += st.st_size
        return sorted(evidence), sorted(segments), other

    def free_bytes(self) -> int:
        try:
            st = os.statvfs(self.root)
            return st.f_bavail * st.f_frsize
        except OSError:
            return 0

    def make_room(self, need_bytes: int = 0) -> int:
        """Delete oldest evidence, then oldest rotated log segments, until the directory is within
        its budget with ``need_bytes`` to spare and the filesystem keeps its reserve. Returns bytes freed."""
        with self._lock:
            evidence, segments, other = self._files()
            used = other + sum(f[3] for f in evidence) + sum(f[3] for f in segments)
            free = self.free_bytes()
            freed = 0
            for _, _, path, size in evidence + segments:
                over_budget = used + need_bytes - freed > self.budget.total_bytes
                short = free + freed < self.budget.reserve_bytes + need_bytes
                if not (over_budget or short):
                    break
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning("storage: cannot delete %s: %s", path, exc)
                    continue
                freed += size
                self.deleted_files += 1
                self.deleted_bytes += size
                log.info("storage: deleted %s (%d bytes) to keep the state directory within its budget", path.name, size)
            return freed


class AlarmStateFile:
    """The alarm manager's snapshot on disk, replaced atomically on every change."""

    def __init__(self, path: Path, health: StorageHealth | None = None, storage: StateStorage | None = None) -> None:
        self.path = Path(path)
        self.health = health
        self.storage = storage
        self.saves = 0

    def load(self) -> tuple[dict[str, Any] | None, str]:
        """(snapshot, note): None and why when there is none or it cannot be read (never fatal)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None, ""
        except OSError as exc:
            return None, f"{self.path.name} unreadable: {errno_name(exc)}"
        try:
            data = json.loads(raw)
        except ValueError as exc:
            return None, f"{self.path.name} is not valid JSON ({exc}); alarm state not restored"
        if not isinstance(data, dict) or not isinstance(data.get("alarms"), list):
            return None, f"{self.path.name} holds no alarm state; not restored"
        return data, ""

    def save(self, snapshot: Mapping[str, Any]) -> bool:
        data = (json.dumps(snapshot, separators=(",", ":"), default=str) + "\n").encode()
        for attempt in (0, 1):
            try:
                self._write(data)
                self.saves += 1
                if self.health is not None:
                    self.health.ok("alarm_state")
                return True
            except OSError as exc:
                if attempt == 0 and self.storage is not None and self.storage.make_room(len(data)) > 0:
                    continue
                if self.health is not None:
                    self.health.failed("alarm_state", self.path, exc)
                return False
        return False

    def _write(self, data: bytes) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
