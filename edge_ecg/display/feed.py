"""What the page is sent: waveform frames, alarm state, findings and history, pushed to each client.

The feed sits beside the pipeline, never in its way. The analysis thread calls ``on_block`` (one
``deque.append`` of references) and the alarm manager calls ``on_event`` through the event sinks
(another append and a notify); everything else happens on the feed's own broadcaster thread:
decimating blocks to the display rate, encoding each message once, and handing the bytes to
every connected page. Each page has its own bounded queue: waveform frames are dropped oldest
first when a page falls behind (counted), alarm/state messages are kept (each carries the whole
state, so a page that lost some still shows the truth), and a page that cannot keep up for long
is disconnected by its write timeout. Memory is bounded by the queue sizes, whatever clients do.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import math
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

log = logging.getLogger(__name__)

MAX_DISPLAY_HZ = 250.0  # a sweep at 25 mm/s needs no more (about 2 samples per pixel at 10 px/mm)
GAP = -32768  # int16 sentinel: no sample (the page breaks the trace)


@dataclass(frozen=True)
class FeedLimits:
    frame_s: float = 0.04  # waveform frames per second = 25; the page interpolates to its refresh rate
    status_s: float = 1.0  # state is also re-sent this often (source state, pause countdown)
    pending_blocks: int = 1024  # blocks awaiting the broadcaster (drop oldest beyond)
    client_frames: int = 50  # frames queued per page (2 s); oldest dropped beyond
    client_messages: int = 256  # state/event messages queued per page
    history: int = 200


class Subscriber:
    """One connected page: bounded queues of encoded SSE messages."""

    def __init__(self, remote: str, limits: FeedLimits) -> None:
        self.remote = remote
        self.connected_wall = time.time()
        self.frames_sent = 0
        self.frames_dropped = 0
        self._frames: collections.deque = collections.deque()
        self._messages: collections.deque = collections.deque()
        self._limits = limits
        self._cond = threading.Condition()
        self.closed = False

    def push_frame(self, data: bytes) -> None:
        with self._cond:
            if len(self._frames) >= self._limits.client_frames:
                self._frames.popleft()
                self.frames_dropped += 1
            self._frames.append(data)
            self._cond.notify()

    def push_message(self, data: bytes) -> None:
        with self._cond:
            if len(self._messages) >= self._limits.client_messages:
                self._messages.popleft()
            self._messages.append(data)
            self._cond.notify()

    def take(self, timeout: float) -> list[bytes]:
        """Everything queued (state and alarms first), waiting up to ``timeout`` for something."""
        with self._cond:
            if not self._frames and not self._messages and not self.closed:
                self._cond.wait(timeout)
            out = list(self._messages) + list(self._frames)
            self.frames_sent += len(self._frames)
            self._messages.clear()
            self._frames.clear()
            return out

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def sse(event: str, payload: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'), default=str)}\n\n".encode()


class Decimator:
    """Blocks at the source rate -> rows at the display rate, keeping QRS peaks.

    Each group of ``k`` samples becomes the sample farthest from the block's median (a plain
    1-in-k pick would shave R waves); NaN (no sample) stays a gap. Display row ``j`` is source
    sample ``j * k``, so a gap in the source is a jump in the display index.
    """

    def __init__(self, fs: float, n_leads: int, max_hz: float = MAX_DISPLAY_HZ) -> None:
        self.k = max(1, int(math.ceil(fs / max_hz)))
        self.fs = fs / self.k
        self._carry = np.zeros((0, n_leads), dtype=np.float32)
        self._next: int | None = None  # source index of the first carried sample

    def push(self, start: int, samples: np.ndarray) -> tuple[int, np.ndarray]:
        """(display index of the first row, rows as float32 µV with NaN for gaps)."""
        if self._next is None or start != self._next + self._carry.shape[0]:
            # first block or a gap: realign to the display grid
            first = -(-start // self.k) * self.k
            samples = samples[first - start :]
            start, self._carry = first, samples[:0]
            self._next = start
        data = np.concatenate([self._carry, samples]) if self._carry.size else samples
        n = (data.shape[0] // self.k) * self.k
        j0 = self._next // self.k
        self._carry = data[n:].copy()
        self._next = self._next + n
        if n == 0:
            return j0, np.zeros((0, data.shape[1]), dtype=np.float32)
        g = data[:n].reshape(n // self.k, self.k, data.shape[1])
        if self.k == 1:
            return j0, g[:, 0, :]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            base = np.nanmedian(data, axis=0) if np.isnan(data).any() else np.median(data, axis=0)
        dev = np.abs(g - base[None, None, :])
        dev = np.where(np.isnan(dev), -1.0, dev)
        pick = np.argmax(dev, axis=1)
        rows = np.take_along_axis(g, pick[:, None, :], axis=1)[:, 0, :]
        return j0, rows


def encode_rows(rows: np.ndarray) -> str:
    """float µV rows -> base64 of little-endian int16 (row-major), NaN -> ``GAP``."""
    x = np.where(np.isnan(rows), GAP, np.clip(np.round(rows), -32767, 32767)).astype("<i2")
    return base64.b64encode(x.tobytes()).decode("ascii")


class DisplayFeed:
    """Pipeline observer and alarm-event listener that broadcasts to ``Subscriber``s.

    ``status`` returns the alarm manager's state; ``source_state`` the source's connection state;
    both are called on the broadcaster thread only.
    """

    def __init__(self, status: Callable[[], dict], source_state: Callable[[], str | None], *,
                 limits: FeedLimits | None = None, evidence_url: Callable[[str], str | None] = lambda p: None,
                 extra_state: Callable[[], dict] | None = None) -> None:
        self.limits = limits or FeedLimits()
        self.status = status
        self.source_state = source_state
        self.evidence_url = evidence_url
        self.extra_state = extra_state or (lambda: {})
        self.history: collections.deque = collections.deque(maxlen=self.limits.history)
        self.findings: dict[str, dict] = {}
        self._findings_lock = threading.Lock()
        self.stream: dict[str, Any] = {}
        self.blocks_dropped = 0
        self._pending: collections.deque = collections.deque()
        self._events: collections.deque = collections.deque(maxlen=1024)
        self._subs: list[Subscriber] = []
        self._subs_lock = threading.Lock()
        self._wake = threading.Condition()
        self._stop = False
        self._decimator: Decimator | None = None
        self._lead_off: list[bool] = []
        self._quality: list[dict] = []
        self._hr: float | None = None
        self._t = 0.0
        self._thread = threading.Thread(target=self._run, name="edge-ecg-display-feed", daemon=True)
        self._started = False

    def start(self) -> "DisplayFeed":
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def close(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._started:
            self._thread.join(3.0)
        with self._subs_lock:
            for s in self._subs:
                s.close()

    # -- observers (called on other threads: constant time, never block) -------------------
    def on_block(self, block, update=None) -> None:
        """Pipeline observer: one block and the DSP's update for it (analysis thread)."""
        if len(self._pending) >= self.limits.pending_blocks:
            self._pending.popleft()
            self.blocks_dropped += 1
        self._pending.append((time.time(), block, update))

    def on_findings(self, bundle: str, labels, probs, smoothed, thresholds, priorities, window_t) -> None:
        """Pipeline observer: a findings bundle classified a window (analysis thread)."""
        entry = {
            "bundle": bundle, "window": window_t, "wall": time.time(),
            "labels": [{"label": l, "p": round(float(s), 3), "p_window": round(float(p), 3), "threshold": float(th),
                        "flagged": bool(s >= th), "alarm": pr != "none", "priority": pr}
                       for l, p, s, th, pr in zip(labels, probs, smoothed, thresholds, priorities)],
        }
        with self._findings_lock:
            self.findings[bundle] = entry
        self._events.append(("findings", None))
        with self._wake:
            self._wake.notify_all()

    def on_event(self, record: Mapping[str, Any]) -> None:
        """Event-sink listener: an alarm change as written to the event log (manager's lock held)."""
        self._events.append(("event", {**record, "wall": time.time()}))
        with self._wake:
            self._wake.notify_all()

    # -- clients ---------------------------------------------------------------------------
    def subscribe(self, remote: str) -> Subscriber:
        sub = Subscriber(remote, self.limits)
        sub.push_message(sse("hello", self.hello()))
        with self._subs_lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        with self._subs_lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def clients(self) -> int:
        with self._subs_lock:
            return len(self._subs)

    def hello(self) -> dict:
        return {"state": self.state(), "history": list(self.history), "stream": dict(self.stream)}

    def state(self) -> dict:
        st = self.status()
        return {**st, "source": self.source_state(), "hr": self._hr, "stream_t": round(self._t, 3),
                "lead_off": list(self._lead_off), "quality": list(self._quality),
                "findings": self._findings_list(), "wall": time.time(), **self.extra_state()}

    def _findings_list(self) -> list[dict]:
        with self._findings_lock:
            return list(self.findings.values())

    def stats(self) -> dict:
        with self._subs_lock:
            subs = list(self._subs)
        return {"clients": len(subs), "frames_dropped": sum(s.frames_dropped for s in subs),
                "frames_sent": sum(s.frames_sent for s in subs), "blocks_dropped": self.blocks_dropped}

    def _broadcast(self, data: bytes, frame: bool) -> None:
        with self._subs_lock:
            subs = list(self._subs)
        for s in subs:
            (s.push_frame if frame else s.push_message)(data)

    # -- broadcaster thread ----------------------------------------------------------------
    def _run(self) -> None:
        next_frame = next_status = time.monotonic()
        while True:
            with self._wake:
                if self._stop:
                    return
                if not self._events:
                    self._wake.wait(max(0.0, min(next_frame, next_status) - time.monotonic()))
                if self._stop:
                    return
            try:
                now = time.monotonic()
                events, changed = self._drain_events()
                if changed or now >= next_status:  # alarms first: they must not wait behind a frame
                    self._broadcast(sse("state", {"state": self.state(), "events": events}), frame=False)
                    next_status = now + self.limits.status_s
                if now >= next_frame:
                    self._frame()
                    next_frame = now + self.limits.frame_s
            except Exception:  # never let a display bug take the feed down
                log.exception("display feed step failed")
                time.sleep(0.2)

    def _drain_events(self) -> tuple[list[dict], bool]:
        """Alarm events since the last step (with their evidence URLs), and whether anything changed."""
        out, changed = [], False
        while self._events:
            kind, rec = self._events.popleft()
            changed = True
            if kind == "event":
                rec = dict(rec)
                png = rec.get("evidence_png")
                if png:
                    rec["evidence_url"] = self.evidence_url(str(png))
                self.history.append(rec)
                out.append(rec)
        return out, changed

    def _frame(self) -> None:
        items = []
        while self._pending:
            items.append(self._pending.popleft())
        if not items:
            return
        first = items[0][1]
        if self._decimator is None or self.stream.get("fs_source") != first.fs or tuple(self.stream.get("leads", ())) != tuple(first.leads):
            self._decimator = Decimator(first.fs, len(first.leads))
            self.stream = {"leads": list(first.leads), "fs_source": first.fs, "fs": self._decimator.fs, "k": self._decimator.k}
            self._broadcast(sse("stream", self.stream), frame=False)
        rows_all, j0 = [], None
        off = np.zeros(len(first.leads), dtype=bool)
        for wall, block, update in items:
            samples = block.samples
            if block.lead_off is not None and block.lead_off.any():
                samples = np.where(block.lead_off, np.float32(np.nan), samples)  # an electrode off: no trace, not a false one
            j, rows = self._decimator.push(block.start, samples)
            if j0 is not None and rows_all and j != j0 + sum(r.shape[0] for r in rows_all):
                self._send_rows(j0, rows_all, items[0][0], wall, off)  # a gap: flush what came before it
                rows_all, j0, off = [], None, np.zeros(len(first.leads), dtype=bool)
            if rows.shape[0]:
                if j0 is None:
                    j0 = j
                rows_all.append(rows)
            off |= block.lead_off_any()
            if update is not None:
                self._hr = update.heart_rate
                if update.quality:
                    self._quality = [{"lead": q.lead, "score": round(float(q.score), 2), "noisy": bool(q.noisy), "flat": bool(q.flat),
                                      "usable": bool(q.usable)} for q in update.quality]
            self._t = block.stop / block.fs
        self._lead_off = [bool(x) for x in off]
        if rows_all:
            self._send_rows(j0, rows_all, items[0][0], items[-1][0], off)

    def _send_rows(self, j0: int, rows_all: list, w0: float, w1: float, off: np.ndarray) -> None:
        rows = np.concatenate(rows_all)
        self._broadcast(sse("wave", {"j": int(j0), "n": int(rows.shape[0]), "w0": round(w0 * 1000, 1), "w1": round(w1 * 1000, 1),
                                     "t": round(self._t, 3), "hr": self._hr, "off": [bool(x) for x in off], "d": encode_rows(rows)}), frame=True)
