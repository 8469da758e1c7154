"""A cart on a pseudo-terminal: streams a real record through the wire protocol, with faults.

``edge-ecg cart-sim RECORD --speed X --faults ...`` (or ``CartSimulator(record, ...).run()``)
opens a pty pair, prints the device path, and behaves like the reference firmware: the ADC clock
runs from "power-up" (the sample index is time since then, streaming or not), GET_HELLO / START /
STOP / PING are answered, SAMPLES frames carry consecutive rows, STATUS goes out every second
while streaming, and a bounded device ring absorbs a host that reads late (rows beyond it are
dropped, so the host sees them as a gap in the index, as with the real firmware).

The ``--link PATH`` option keeps a stable symlink to the current pty, as udev's
``/dev/serial/by-id/...`` does for a real cart: an unplug closes the pty and removes the link, a
replug opens a new pty (a new ``/dev/pts/N``) and points the link at it.

Faults, comma-separated ``KIND@START[+DURATION][:PARAM]`` (times in seconds of the record):
``drop@10+5:0.01`` drop bytes with probability 0.01; ``bitflip@10+5:0.001`` flip one bit of a
byte with that probability; ``garbage@12:300`` inject 300 random bytes; ``stall@20+2`` send
nothing for 2 s; ``unplug@30+1.5`` close the pty for 1.5 s; ``leadoff@40+3:LA+V2`` flag
electrodes off for 3 s (default ``LA``); ``jump@25:86400`` send one SAMPLES frame (the first from
25 s) with its index 86400 s of samples ahead (a firmware fault with a valid CRC; negative goes
back), in one write together with the 4 frames after it, so a host reads them in one chunk.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from firmware_bridge.codec import Decoder, encode, encode_payload
from firmware_bridge.sim_support import Fault, FaultSpecError, PtyDevice, parse_fault_spec, spawn_simulator
from edge_ecg.errors import RecordError
from firmware_bridge.frames import (
    ELECTRODE_BIT,
    MAX_PAYLOAD,
    FrameError,
    pack_payload,
    T_GET_HELLO,
    T_PING,
    T_START,
    T_STOP,
    Command,
    Hello,
    Pong,
    Status,
    STATUS_ERR_RING_OVERFLOW,
    pack_samples,
)

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "bitflip", "garbage", "stall", "unplug", "leadoff", "jump")
_DEFAULT_PARAM = {"drop": "0.01", "bitflip": "0.001", "garbage": "256", "leadoff": "LA", "jump": "86400"}
JUMP_GLUED_FRAMES = 4  # frames after a jumped one that go out in the same write


def _check_param(fault: Fault, item: str) -> None:
    if fault.kind == "jump":
        try:
            float(fault.param)
        except ValueError:
            raise FaultSpecError(f"fault {item!r}: jump needs :SECONDS (the index offset), got {fault.param!r}") from None
    if fault.kind == "leadoff":
        bad = [e for e in fault.param.split("+") if e not in ELECTRODE_BIT]
        if bad:
            raise FaultSpecError(f"fault {item!r}: unknown electrode(s) {bad} (known: {', '.join(ELECTRODE_BIT)})")


def parse_faults(spec: str) -> list[Fault]:
    """``"unplug@30+1.5,garbage@12:300"`` -> faults; raises ``FaultSpecError`` naming the bad item."""
    return parse_fault_spec(spec, FAULT_KINDS, _DEFAULT_PARAM, ("drop", "bitflip", "stall", "unplug", "leadoff"), _check_param)


def infer_uv_per_lsb(lead: np.ndarray, fallback: float = 1.0) -> float:
    """The ADC step of one lead in microvolts, so that its integer counts cross the wire exactly.

    Records read in physical units are ``(adc - baseline) / gain``; the smallest step between
    distinct values is one count (or a multiple, which is still exact), refined by least squares
    against the float32 rounding of the reader. If the values are not on such a grid (resampled
    or filtered data), ``fallback`` is used and the simulator quantises, as a real ADC would.
    """
    x = np.asarray(lead, dtype=np.float64)
    x = x[np.isfinite(x)]
    u = np.unique(x)
    if u.size < 2:
        return fallback
    step = float(np.diff(u).min())
    counts = np.round(x / step)
    if not counts.any():
        return fallback
    step = float(np.dot(x, counts) / np.dot(counts, counts))
    if np.abs(x / step - counts).max() < 1e-3 and np.abs(counts).max() < (1 << 23):
        return step
    return fallback


class CartSimulator(PtyDevice):
    """One simulated cart; ``run()`` blocks until the record has been sent (or ``stop()``).

    ``record`` is an ``edge_ecg.records.Record``. ``speed`` scales the ADC clock (1 = real time).
    ``ring_s`` is the device ring in seconds of signal: a host that reads later than that loses
    rows (reported as a gap). ``on_event(kind, detail)`` hears "pty", "unplug", "replug", "end".
    """

    def __init__(
        self,
        record,
        *,
        speed: float = 1.0,
        faults: Sequence[Fault] = (),
        link: str | os.PathLike[str] | None = None,
        rows_per_frame: int | None = None,
        ring_s: float = 2.0,
        loop: bool = False,
        uv_per_lsb: Sequence[float] | None = None,
        device_id: int = 0xEC6_0000_0001,
        session_id: int | None = None,
        seed: int = 0,
        linger_s: float = 5.0,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.record = record
        self.fs = float(record.fs)
        self.speed = float(speed)
        self.faults = list(faults)
        self.link = Path(link) if link else None
        self.loop = loop
        self.linger_s = linger_s
        self.on_event = on_event or (lambda kind, detail: log.info("cart-sim %s %s", kind, detail))
        self.rng = np.random.default_rng(seed)
        sig = np.asarray(record.signals, dtype=np.float64)
        lsb = uv_per_lsb or [infer_uv_per_lsb(sig[:, j]) for j in range(sig.shape[1])]
        self.uv_per_lsb = tuple(float(np.float32(v)) for v in lsb)  # what HELLO can carry
        sig = sig / np.asarray(self.uv_per_lsb)
        self.valid = np.isfinite(sig).all(axis=1)  # rows with a NaN are never sent: a gap
        self.counts = np.clip(np.round(np.nan_to_num(sig)), -(1 << 23), (1 << 23) - 1).astype(np.int32)
        self.n = self.counts.shape[0]
        max_rows = (MAX_PAYLOAD - 8) // (2 + 3 * max(1, self.counts.shape[1]))
        self.rows_per_frame = max(1, min(int(rows_per_frame or round(self.fs * 0.02)), max_rows))
        self.ring_rows = max(self.rows_per_frame, int(ring_s * self.fs))
        self.leadoff_bits = self._leadoff_status()
        self.hello = Hello(
            device_id=device_id,
            session_id=session_id if session_id is not None else int(self.rng.integers(1, 1 << 32)),
            fs=self.fs,
            uv_per_lsb=self.uv_per_lsb,
            leads=tuple(record.leads),
            firmware=(1, 0, 0),
            rows_per_frame=min(self.rows_per_frame, 255),
        )
        try:
            pack_payload(self.hello)  # lead names and counts must fit the protocol
        except FrameError as exc:
            raise RecordError(record.source or record.name or "<record>", f"cannot be sent by a cart: {exc}") from None
        self.master: int | None = None
        self.slave: int | None = None
        self.path = ""
        self._stop = False
        self.dropped_rows = 0
        self.frames_sent = 0
        self._jumps = sorted((int(f.start_s * self.fs), int(round(float(f.param) * self.fs))) for f in self.faults if f.kind == "jump")
        self._held: tuple[list[bytes], int, int] | None = None  # a jumped frame and those glued to it: wires, rows, frames still to add

    def stop(self) -> None:
        self._stop = True

    # ------------------------------------------------------------------ the signal
    def _leadoff_status(self) -> np.ndarray:
        bits = np.zeros(self.n, dtype=np.uint16)
        for f in self.faults:
            if f.kind == "leadoff":
                mask = 0
                for e in f.param.split("+"):
                    mask |= ELECTRODE_BIT[e]
                a, b = int(f.start_s * self.fs), int((f.start_s + f.duration_s) * self.fs)
                bits[a:b] |= mask
        return bits

    def _frames(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        """Encoded SAMPLES frames for device indices [start, stop): runs of valid rows, chunked."""
        out = []
        i = start
        while i < stop:
            if not self.loop and i >= self.n:
                break
            r = i % self.n
            end = min(stop, i + self.rows_per_frame, i - r + self.n)  # a frame never spans the loop seam
            ok = self.valid[r : r + (end - i)]
            if not ok.all():
                first_bad = int(np.argmin(ok))
                if first_bad == 0:
                    i += 1
                    continue
                end = i + first_bad
            n_rows = end - i
            rows = slice(r, r + n_rows)
            index = i
            if self._jumps and i >= self._jumps[0][0]:
                index = (i + self._jumps.pop(0)[1]) % (1 << 32)  # this frame carries a wrong index (valid CRC)
                self._held = ([], 0, JUMP_GLUED_FRAMES + 1)
                self.on_event("jump", f"frame at row {i} sent with index {index}")
            payload = pack_samples(index, self.counts[rows], self.leadoff_bits[rows])
            wire = self._corrupt(encode_payload(payload), i / self.fs)
            i = end
            if self._held is None:
                out.append((n_rows, wire))
                continue
            wires, held_rows, left = self._held
            wires.append(wire)
            self._held = (wires, held_rows + n_rows, left - 1)
            if left - 1 == 0 or (not self.loop and i >= self.n):  # complete (or the record ended): one write
                out.append((held_rows + n_rows, b"".join(wires)))
                self._held = None
        return out

    def _corrupt(self, wire: bytes, t: float) -> bytes:
        for f in self.faults:
            if f.kind in ("drop", "bitflip") and f.active(t):
                p = float(f.param)
                a = np.frombuffer(wire, dtype=np.uint8).copy()
                hit = self.rng.random(a.size) < p
                if f.kind == "drop":
                    a = a[~hit]
                else:
                    a[hit] ^= (1 << self.rng.integers(0, 8, size=int(hit.sum()))).astype(np.uint8)
                wire = a.tobytes()
        return wire

    # ------------------------------------------------------------------ the firmware loop
    def run(self) -> int:
        """Stream until the record is sent and read by the host (or ``stop()``); returns 0."""
        self._plug()
        self.on_event("pty", self.device_path)
        t0: float | None = None  # the ADC starts at the first START ("power-up"), then never stops
        decoder = Decoder()
        control: collections.deque[bytes] = collections.deque()  # HELLO, PONG, STATUS, garbage
        pending: collections.deque[tuple[int, bytes]] = collections.deque()  # encoded SAMPLES not yet written
        pending_rows = 0
        out = b""  # the frame being written (never dropped once started)
        streaming = False
        next_row = 0  # next ADC conversion to take from the ring into a frame
        last_status = time.monotonic()
        fired: set[int] = set()  # one-shot faults (garbage, unplug) already done
        unplugged_until: float | None = None
        done_at: float | None = None
        drained_at: float | None = None
        max_frames = 64  # frames encoded per turn, so writing and commands never wait on a backlog
        try:
            while not self._stop:
                now = time.monotonic()
                clock = int((now - t0) * self.fs * self.speed) if t0 is not None else 0  # conversions since power-up
                t = clock / self.fs
                if unplugged_until is not None:
                    if now < unplugged_until:
                        time.sleep(min(0.01, unplugged_until - now))
                        continue
                    self._plug()
                    unplugged_until = None
                    decoder = Decoder()
                    self.on_event("replug", self.path)
                for k, f in enumerate(self.faults):
                    if f.kind == "unplug" and k not in fired and t0 is not None and t >= f.start_s:
                        fired.add(k)
                        self._unplug()
                        streaming, out, pending, pending_rows, control = False, b"", collections.deque(), 0, collections.deque()
                        unplugged_until = now + f.duration_s / self.speed
                        self.on_event("unplug", self.path)
                if unplugged_until is not None:
                    continue
                stalled = any(f.kind == "stall" and f.active(t) for f in self.faults)
                # commands from the host
                try:
                    data = os.read(self.master, 65536)
                except (BlockingIOError, InterruptedError):
                    data = b""
                for frame in decoder.feed(data) if data else []:
                    if not isinstance(frame, Command):
                        continue
                    if frame.kind == T_GET_HELLO:
                        control.append(encode(self.hello))
                    elif frame.kind == T_START:
                        if t0 is None:
                            t0, clock = now, 0
                        if not streaming:
                            next_row = clock  # rows converted while stopped are not sent
                        streaming = True
                    elif frame.kind == T_STOP:
                        streaming = False
                    elif frame.kind == T_PING:
                        control.append(encode(Pong(frame.nonce, self._uptime_ms(now, t0))))
                end = clock if self.loop else min(clock, self.n)
                if streaming:
                    # the ring holds converted rows not yet written; beyond its size the oldest go
                    while pending and pending_rows + (end - next_row) > self.ring_rows:
                        rows, _ = pending.popleft()
                        pending_rows -= rows
                        self.dropped_rows += rows
                    if end - next_row > self.ring_rows:
                        self.dropped_rows += end - next_row - self.ring_rows
                        next_row = end - self.ring_rows
                    stop = min(end, next_row + max_frames * self.rows_per_frame)
                    if stop > next_row:
                        for rows, wire in self._frames(next_row, stop):
                            pending.append((rows, wire))
                            pending_rows += rows
                        next_row = stop
                    for k, f in enumerate(self.faults):
                        if f.kind == "garbage" and k not in fired and t >= f.start_s:
                            fired.add(k)
                            control.append(self.rng.integers(0, 256, size=int(f.param)).astype(np.uint8).tobytes())
                    if now - last_status >= 1.0:
                        last_status = now
                        errors = STATUS_ERR_RING_OVERFLOW if self.dropped_rows else 0
                        control.append(encode(Status(battery_pct=255, errors=errors, dropped_rows=self.dropped_rows & 0xFFFFFFFF,
                                                     uptime_ms=self._uptime_ms(now, t0))))
                # write as much as the link takes; control frames go ahead of queued samples
                if not stalled:
                    while True:
                        if not out:
                            if control:
                                out = control.popleft()
                            elif pending:
                                rows, out = pending.popleft()
                                pending_rows -= rows
                                self.frames_sent += 1
                            else:
                                break
                        try:
                            n = os.write(self.master, out)
                        except BlockingIOError:
                            break
                        out = out[n:]
                        if out:
                            break
                # the end of the record: wait for the host to read what is in the pty, then exit
                if not self.loop and streaming and next_row >= self.n and not pending and not out and not control:
                    if done_at is None:
                        done_at = now
                        self.on_event("end", f"{self.n} rows, {self.dropped_rows} dropped")
                    if self._unread() > 0:
                        drained_at = None
                    elif drained_at is None:
                        drained_at = now
                    # the host has read everything (for a moment: the kernel may still be moving
                    # bytes between the pty's halves), or it is not reading at all
                    if (drained_at is not None and now - drained_at > 0.2) or now - done_at > self.linger_s:
                        break
                busy = streaming and next_row < end
                wait = [self.master] if (out or pending or control) and not stalled else []
                timeout = 0.0 if busy else max(0.001, min(0.02, self.rows_per_frame / self.fs / self.speed))
                select.select([self.master], wait, [], timeout)
        finally:
            self._unplug()
        return 0

    @staticmethod
    def _uptime_ms(now: float, t0: float | None) -> int:
        return int((now - t0) * 1000) & 0xFFFFFFFF if t0 is not None else 0


def run_cart_sim(
    record_path: str,
    *,
    speed: float = 1.0,
    faults: str = "",
    link: str | None = None,
    rows_per_frame: int | None = None,
    ring_s: float = 2.0,
    loop: bool = False,
    seed: int = 0,
    print_fn: Callable[[str], None] = print,
) -> int:
    """The ``edge-ecg cart-sim`` command: read a record, print the device path, stream it."""
    from edge_ecg.records import read_record

    fault_list = parse_faults(faults)  # before the (slow) record read: a typo fails at once
    record = read_record(record_path)

    def on_event(kind: str, detail: str) -> None:
        if kind == "pty":
            print_fn(detail)  # first line of stdout: the path to open
            sys.stdout.flush()
        else:
            log.info("cart-sim %s %s", kind, detail)

    sim = CartSimulator(record, speed=speed, faults=fault_list, link=link, rows_per_frame=rows_per_frame,
                        ring_s=ring_s, loop=loop, seed=seed, on_event=on_event)
    log.info("cart-sim %s: %d rows x %s at %g Hz, %s uV/LSB, speed %gx", record_path, sim.n, ",".join(record.leads),
             sim.fs, ",".join(f"{v:.6g}" for v in sim.uv_per_lsb), speed)
    return sim.run()


def spawn_cart_sim(record_path: str | os.PathLike[str], *args: str, timeout_s: float = 60.0, cwd: str | os.PathLike[str] | None = None):
    """Start ``edge-ecg cart-sim RECORD ARGS...`` as its own process; returns ``(process, device path)``.

    For tests and demos that need a real cart process (its own pty, killed or exiting on its
    own). The caller terminates the process when done.
    """
    return spawn_simulator("cart-sim", record_path, *args, timeout_s=timeout_s, cwd=cwd)
