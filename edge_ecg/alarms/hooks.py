"""Run a site program per alarm change (a buzzer, a light), never blocking the pipeline.

The program gets the event as one JSON line on stdin and as environment variables
(``EDGE_ECG_EVENT``, ``EDGE_ECG_ALARM``, ``EDGE_ECG_PRIORITY``, ``EDGE_ECG_AUDIO``). Calls run one
at a time on a worker thread from a bounded queue: a hung hook is killed after ``timeout_s``, a
full queue drops the oldest pending call (counted and logged), and the pipeline only ever does a
non-blocking ``put``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)


@dataclass
class HookStats:
    runs: int = 0
    failures: int = 0
    timeouts: int = 0
    dropped: int = 0
    last_error: str = ""
    durations_s: list[float] = field(default_factory=list)


class HookRunner:
    """Queue events for ``argv``; ``submit`` never blocks."""

    def __init__(self, argv: Sequence[str], timeout_s: float = 5.0, max_pending: int = 64) -> None:
        if not argv:
            raise ValueError("hook command is empty")
        self.argv = list(argv)
        self.timeout_s = float(timeout_s)
        self.stats = HookStats()
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._work, name="edge-ecg-hooks", daemon=True)
        self._thread.start()

    def submit(self, event: Mapping[str, Any]) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.stats.dropped += 1
                    log.warning("hook %s: queue full, dropped the oldest pending alarm change", self.argv[0])
                except queue.Empty:
                    pass

    def _work(self) -> None:
        import time

        while True:
            event = self._queue.get()
            if event is None:
                return
            env = dict(os.environ)
            env.update(
                EDGE_ECG_EVENT=str(event.get("kind", "")),
                EDGE_ECG_ALARM=str(event.get("alarm") or ""),
                EDGE_ECG_PRIORITY=str(event.get("priority") or ""),
                EDGE_ECG_AUDIO=str(event.get("audio") or ""),
            )
            t0 = time.monotonic()
            try:
                proc = subprocess.run(
                    self.argv,
                    input=(json.dumps(event, default=str) + "\n").encode(),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=self.timeout_s,
                    close_fds=True,
                )
                self.stats.runs += 1
                if proc.returncode != 0:
                    self.stats.failures += 1
                    self.stats.last_error = f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-200:]}"
                    log.warning("hook %s failed (%s)", self.argv[0], self.stats.last_error)
            except subprocess.TimeoutExpired:
                self.stats.runs += 1
                self.stats.timeouts += 1
                self.stats.last_error = f"killed after {self.timeout_s} s"
                log.warning("hook %s did not finish in %.1f s and was killed", self.argv[0], self.timeout_s)
            except OSError as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                log.warning("hook %s cannot run: %s", self.argv[0], exc)
            self.stats.durations_s.append(time.monotonic() - t0)
            del self.stats.durations_s[:-100]

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until pending calls have run (tests, shutdown); True if the queue emptied."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 or self._queue.empty():
                # empty() is true while the last call runs; poll runs-count stability instead
                before = self.stats.runs + self.stats.failures
                time.sleep(0.05)
                if self._queue.empty() and before == self.stats.runs + self.stats.failures:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=self.timeout_s + 1)
