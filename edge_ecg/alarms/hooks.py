"""Run a site program per alarm change (a buzzer, a light), never blocking the pipeline.

The program gets the event as one JSON line on stdin and as environment variables
(``EDGE_ECG_EVENT``, ``EDGE_ECG_ALARM``, ``EDGE_ECG_PRIORITY``, ``EDGE_ECG_AUDIO``, ``EDGE_ECG_SEQ``).

Why a priority queue: a hook can be slow (a site script that blocks for a minute), and the
changes that matter most are the ones that must not wait behind, or be pushed out by, a flood of
low-priority ones. So:

- pending calls are ordered by priority (high, medium, low, then events without a priority), and
  in order of arrival within a priority;
- a **high-priority change is never dropped** and never coalesced;
- pending medium/low changes **coalesce** per alarm (a newer change of the same alarm replaces
  the pending one: the hook learns the latest state), and when more than ``max_pending`` of them
  wait, the oldest of the lowest priority is dropped;
- at most ``workers`` calls run at once; one of them is reserved for high-priority changes, so a
  high-priority change starts as soon as the reserved worker is free even while the others are
  stuck in slow low-priority calls;
- changes of one alarm are delivered one at a time, in order (a "reset" never overtakes its
  "raised");
- a call still running after ``timeout_s`` is killed; every drop and coalescing is counted and
  reported to ``on_drop`` (the daemon writes each one to the event log).

``submit`` only takes a lock and appends: the pipeline never waits.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger(__name__)

RANK = {"high": 3, "medium": 2, "low": 1}
HIGH = RANK["high"]


def rank_of(event: Mapping[str, Any]) -> int:
    return RANK.get(str(event.get("priority") or ""), 0)


@dataclass
class HookStats:
    runs: int = 0
    failures: int = 0
    timeouts: int = 0
    dropped: int = 0
    coalesced: int = 0
    last_error: str = ""
    durations_s: list[float] = field(default_factory=list)
    max_concurrent: int = 0


@dataclass
class _Pending:
    rank: int
    order: int
    event: Mapping[str, Any]

    @property
    def alarm(self) -> str:
        return str(self.event.get("alarm") or "")


class HookRunner:
    """Deliver events to ``argv`` by priority from ``workers`` threads; ``submit`` never blocks."""

    def __init__(self, argv: Sequence[str], timeout_s: float = 5.0, max_pending: int = 64, workers: int = 3,
                 on_drop: Callable[[Mapping[str, Any], str, HookStats], None] | None = None) -> None:
        if not argv:
            raise ValueError("hook command is empty")
        if workers < 2:
            raise ValueError("a hook needs at least 2 workers (one is reserved for high-priority changes)")
        self.argv = list(argv)
        self.timeout_s = float(timeout_s)
        self.max_pending = max(1, int(max_pending))
        self.on_drop = on_drop
        self.stats = HookStats()
        self._pending: list[_Pending] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._busy_alarms: set[str] = set()
        self._running = 0
        self._closed = False
        self._procs: set[subprocess.Popen] = set()
        self._threads = [threading.Thread(target=self._work, args=(k == 0,), name=f"edge-ecg-hook-{k}", daemon=True) for k in range(workers)]
        for t in self._threads:
            t.start()

    # -- queue --------------------------------------------------------------------------
    def submit(self, event: Mapping[str, Any]) -> None:
        drops: list[tuple[Mapping[str, Any], str]] = []
        with self._cond:
            item = _Pending(rank_of(event), next(self._order), event)
            if item.rank < HIGH and item.alarm:
                for k, p in enumerate(self._pending):
                    if p.rank < HIGH and p.alarm == item.alarm:  # a newer change of the same alarm: the hook gets the latest
                        del self._pending[k]
                        self.stats.coalesced += 1
                        drops.append((p.event, "coalesced"))
                        break
            self._pending.append(item)
            low = [p for p in self._pending if p.rank < HIGH]
            while len(low) > self.max_pending:
                victim = min(low, key=lambda p: (p.rank, p.order))
                self._pending.remove(victim)
                low.remove(victim)
                self.stats.dropped += 1
                drops.append((victim.event, "queue full"))
            self._cond.notify_all()
        for ev, why in drops:
            if why == "queue full":
                log.warning("hook %s: queue full, dropped a pending %s change of %s", self.argv[0], ev.get("priority"), ev.get("alarm"))
            if self.on_drop is not None:
                try:
                    self.on_drop(ev, why, self.stats)
                except Exception as exc:
                    log.warning("hook drop report failed: %s", exc)

    def _take(self, reserved: bool) -> _Pending | None:
        """The most urgent pending event this worker may run (caller holds the lock)."""
        best = None
        for p in self._pending:
            if reserved and p.rank < HIGH:
                continue
            if p.alarm and p.alarm in self._busy_alarms:
                continue  # one alarm's changes in order
            if best is None or (p.rank, -p.order) > (best.rank, -best.order):
                best = p
        if best is not None:
            # never let a later change of an alarm overtake an earlier one still pending
            earlier = [p for p in self._pending if p.alarm and p.alarm == best.alarm and p.order < best.order]
            if earlier:
                best = min(earlier, key=lambda p: p.order)
                if reserved and best.rank < HIGH:
                    return None
            self._pending.remove(best)
        return best

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # -- workers ------------------------------------------------------------------------
    def _work(self, reserved: bool) -> None:
        while True:
            with self._cond:
                item = None
                while not self._closed:
                    item = self._take(reserved)
                    if item is not None:
                        break
                    self._cond.wait(0.5)
                if item is None:
                    return
                if item.alarm:
                    self._busy_alarms.add(item.alarm)
                self._running += 1
                self.stats.max_concurrent = max(self.stats.max_concurrent, self._running)
            try:
                self._call(item.event)
            finally:
                with self._cond:
                    self._busy_alarms.discard(item.alarm)
                    self._running -= 1
                    self._cond.notify_all()

    def _call(self, event: Mapping[str, Any]) -> None:
        env = dict(os.environ)
        env.update(
            EDGE_ECG_EVENT=str(event.get("kind", "")),
            EDGE_ECG_ALARM=str(event.get("alarm") or ""),
            EDGE_ECG_PRIORITY=str(event.get("priority") or ""),
            EDGE_ECG_AUDIO=str(event.get("audio") or ""),
            EDGE_ECG_SEQ=str(event.get("seq") or ""),
        )
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, close_fds=True)
        except OSError as exc:
            with self._cond:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
            log.warning("hook %s cannot run: %s", self.argv[0], exc)
            return
        with self._cond:
            self._procs.add(proc)
        try:
            _, err = proc.communicate((json.dumps(event, default=str) + "\n").encode(), timeout=self.timeout_s)
            with self._cond:
                self.stats.runs += 1
                if proc.returncode != 0:
                    self.stats.failures += 1
                    self.stats.last_error = f"exit {proc.returncode}: {err.decode(errors='replace')[-200:]}"
            if proc.returncode != 0:
                log.warning("hook %s failed (%s)", self.argv[0], self.stats.last_error)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            with self._cond:
                self.stats.runs += 1
                self.stats.timeouts += 1
                self.stats.last_error = f"killed after {self.timeout_s} s"
            log.warning("hook %s did not finish in %.1f s and was killed", self.argv[0], self.timeout_s)
        finally:
            with self._cond:
                self._procs.discard(proc)
                self.stats.durations_s.append(time.monotonic() - t0)
                del self.stats.durations_s[:-100]

    # -- shutdown -----------------------------------------------------------------------
    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is pending or running (tests, shutdown); True if it emptied."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        """Stop the workers; hooks still running are killed (the daemon is going away)."""
        with self._cond:
            self._closed = True
            procs = list(self._procs)
            self._cond.notify_all()
        for p in procs:
            try:
                p.kill()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)
