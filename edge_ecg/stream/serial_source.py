"""``SerialSource``: a cart on a serial port (USB CDC-ACM, FTDI, a pty) as a stream of ``SampleBlock``.

A reader thread owns the port (pyserial): it handshakes (GET_HELLO -> HELLO, START), decodes
frames with ``firmware_bridge.Decoder``, turns SAMPLES frames into blocks placed by the cart's own
running sample index, and puts them on a bounded queue. The consumer (a pipeline thread) takes
them with ``read(timeout)`` or by iterating; nothing the port does can block it for longer than
the timeout it asked for. When the device goes away (unplug, read error, silence) the thread
reports ``LOST`` and reopens the same path with exponential backoff (so a udev
``/dev/serial/by-id/...`` link that comes back finds it again); the sample index carries on and
the samples that never arrived show up as ``gap_before`` on the next block, never as shifted time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from edge_ecg.stream.block import SampleBlock, SourceState
from firmware_bridge.codec import Decoder, encode
from firmware_bridge.frames import PACER_BIT, PROTOCOL_VERSION, T_GET_HELLO, T_PING, T_START, T_STOP, Command, Hello, Pong, Samples, Status, lead_electrode_mask

log = logging.getLogger(__name__)

_WRAP = 1 << 32


@dataclass
class SourceStats:
    """Counters for the technical log and alarms (read them from any thread; they only grow)."""

    connects: int = 0
    reconnects: int = 0
    blocks: int = 0
    samples: int = 0
    samples_missing: int = 0  # sum of gap_before handed to the consumer
    queue_overruns: int = 0  # blocks dropped because the consumer fell behind
    bad_frames: int = 0
    bytes_in: int = 0
    device_errors: int = 0  # last STATUS error bits
    device_dropped_rows: int = 0
    last_error: str = ""
    decoder: dict = field(default_factory=dict)


class SerialSource:
    """A cart on ``port`` (a device path, a ``/dev/serial/by-id/...`` link, or just the by-id name),
    read in the background.

    Constructor (everything but ``port`` is keyword-only; seconds everywhere):

    - ``baudrate``: for real UARTs (CDC-ACM and ptys ignore it).
    - ``stall_s`` (1.0): connected but no samples for this long -> ``STALLED`` (a PING is sent).
    - ``silence_s`` (3.0): no samples for this long (silent, or answering PINGs but not
      streaming) -> ``LOST``: close, reopen, handshake again.
    - ``handshake_s`` (1.0): how long to wait for HELLO after opening before trying again.
    - ``backoff_s`` (0.05, 0.5): first and longest wait between reconnect attempts (doubling);
      the cap keeps the time from "device is back" to "streaming" under about a second.
    - ``queue_blocks`` (4096): the bounded queue; when the consumer falls that far behind, the
      oldest block is dropped and the consumer sees it as a gap (the reader never blocks).
    - ``on_state(state, detail)``: called from the reader thread on every state change.
    - ``exclusive`` (True): hold an advisory lock on the port; a second opener fails (and keeps
      retrying) instead of stealing half of the bytes.
    - ``start`` (True): start the reader thread now (else call ``start()``).

    Use::

        with SerialSource("/dev/serial/by-id/usb-EdgeECG_Cart-if00") as src:
            for block in src:            # blocks until data or close(); or:
                ...
            block = src.read(timeout=0.1)   # None when nothing arrived in time
            src.state, src.hello, src.stats

    Blocks carry ``start`` (the stream's sample index), float32 microvolts (ADC counts times the
    HELLO's units per LSB), per-sample per-lead ``lead_off`` from the electrode bits, ``pacer`` row
    offsets, and ``gap_before``. The index is the cart's (unwrapped past 2**32); if the cart
    restarted (a new HELLO session id, or its index went backwards), the source re-bases it so the
    stream index keeps increasing, estimating the gap from the time it heard nothing.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 921600,
        stall_s: float = 1.0,
        silence_s: float = 3.0,
        handshake_s: float = 1.0,
        backoff_s: tuple[float, float] = (0.05, 0.5),
        queue_blocks: int = 4096,
        read_timeout_s: float = 0.05,
        on_state: Callable[[SourceState, str], None] | None = None,
        exclusive: bool = True,
        start: bool = True,
    ) -> None:
        port = str(port)
        # a bare udev name ("usb-EdgeECG_Cart_1234-if00") means the by-id link of that cart
        self.port = port if ("/" in port or "://" in port) else f"/dev/serial/by-id/{port}"
        self.baudrate = baudrate
        self.stall_s = stall_s
        self.silence_s = silence_s
        self.handshake_s = handshake_s
        self.backoff_s = backoff_s
        self.read_timeout_s = read_timeout_s
        self.exclusive = exclusive
        self.on_state = on_state
        self.stats = SourceStats()
        self.hello: Hello | None = None
        self._queue: queue.Queue[SampleBlock] = queue.Queue(maxsize=queue_blocks)
        self._closed = threading.Event()
        self._state = SourceState.CONNECTING
        self._state_since = time.monotonic()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"serial-source {self.port}", daemon=True)
        self._ser = None
        # index bookkeeping (reader thread only)
        self._session: int | None = None
        self._dev_next: int | None = None  # the device's unwrapped index expected next
        self._offset = 0  # stream index = device index + offset
        self._stream_next: int | None = None  # stream index after the last row received
        self._last_rx_wall = 0.0
        self._rebase = False
        self._lead_masks = np.zeros(0, dtype=np.uint16)
        self._lsb = np.zeros(0, dtype=np.float32)
        self._bad_before = 0  # bad frames of earlier connections
        # consumer side
        self._origin: int | None = None  # start of the first block ever produced
        self._consumer_next: int | None = None
        if start:
            self.start()

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def state_since(self) -> float:
        """``time.monotonic()`` of the last state change."""
        return self._state_since

    def read(self, timeout: float | None = None) -> SampleBlock | None:
        """The next block (with ``gap_before`` set), or ``None`` if none arrived within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                block = self._queue.get(timeout=remaining) if remaining != 0.0 else self._queue.get_nowait()
            except queue.Empty:
                return None
            block = self._place(block)
            if block is not None:
                return block

    def __iter__(self) -> Iterator[SampleBlock]:
        """Yield blocks until ``close()``; waits in short slices so closing ends the loop promptly."""
        while True:
            block = self.read(timeout=0.1)
            if block is not None:
                yield block
            elif self._closed.is_set() and self._queue.empty():
                return

    def close(self) -> None:
        """Stop the reader (sends STOP if connected) and release the port."""
        self._closed.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)
        self._set_state(SourceState.CLOSED, "closed")

    def __enter__(self) -> "SerialSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ consumer side
    def _place(self, block: SampleBlock) -> SampleBlock | None:
        """Set ``gap_before`` against what the consumer last got (queue drops included)."""
        nxt = self._consumer_next if self._consumer_next is not None else self._origin
        if nxt is not None and block.start < nxt:  # overlap (cannot happen with a sane cart): trim
            skip = nxt - block.start
            if skip >= block.n:
                return None
            block = SampleBlock(
                start=nxt, samples=block.samples[skip:], fs=block.fs, leads=block.leads,
                lead_off=None if block.lead_off is None else block.lead_off[skip:],
                pacer=block.pacer[block.pacer >= skip] - skip,
            )
        gap = 0 if nxt is None else block.start - nxt
        if gap:
            block = SampleBlock(block.start, block.samples, block.fs, block.leads, block.lead_off, block.pacer, gap_before=gap)
            self.stats.samples_missing += gap
        self._consumer_next = block.stop
        return block

    # ------------------------------------------------------------------ reader thread
    def _set_state(self, state: SourceState, detail: str = "") -> None:
        with self._lock:
            if state == self._state:
                return
            if self._state == SourceState.CLOSED:
                return
            self._state = state
            self._state_since = time.monotonic()
        log.info("serial source %s: %s %s", self.port, state.value, detail)
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:  # a broken callback must not kill the reader
                log.exception("serial source %s: on_state callback failed", self.port)

    def _run(self) -> None:
        import serial  # pyserial

        delay = self.backoff_s[0]
        while not self._closed.is_set():
            try:
                # exclusive: an advisory lock (flock) so that no second reader (another source,
                # a modem manager probing ttyACM devices) splits the byte stream with us
                self._ser = serial.Serial(self.port, self.baudrate, timeout=self.read_timeout_s, write_timeout=1.0,
                                          exclusive=self.exclusive)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.stats.last_error = str(exc)
                self._set_state(SourceState.LOST, f"cannot open: {exc}")
                self._closed.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            try:
                if self._session_loop(self._ser):
                    delay = self.backoff_s[0]
            except (serial.SerialException, OSError) as exc:
                self.stats.last_error = str(exc)
                self._set_state(SourceState.LOST, f"link error: {exc}")
                delay = self.backoff_s[0]  # it was working a moment ago: retry soon
            finally:
                try:
                    self._ser.close()
                except Exception:
                    pass
            if not self._closed.is_set():
                self._closed.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])

    def _handshake(self, ser, decoder: Decoder) -> tuple[Hello | None, list]:
        """Ask for HELLO until it comes; frames that arrive meanwhile (samples a streaming cart
        had already queued) are kept and handled once HELLO says how to read them."""
        deadline = time.monotonic() + self.handshake_s
        next_ask = 0.0
        early: list = []
        while time.monotonic() < deadline and not self._closed.is_set():
            if time.monotonic() >= next_ask:
                ser.write(encode(Command(T_GET_HELLO)))
                next_ask = time.monotonic() + 0.25
            data = ser.read(max(1, ser.in_waiting))
            frames = decoder.feed(data) if data else []
            for i, frame in enumerate(frames):
                if isinstance(frame, Hello):
                    return frame, early + frames[:i] + frames[i + 1 :]
            early += frames
        return None, []

    def _session_loop(self, ser) -> bool:
        """One connection: handshake then stream until the link fails, goes silent or we close."""
        decoder = Decoder()
        hello, early = self._handshake(ser, decoder)
        if hello is None:
            self._set_state(SourceState.LOST, "no HELLO from device")
            return False
        if hello.protocol_version != PROTOCOL_VERSION:
            self.stats.last_error = f"device speaks protocol {hello.protocol_version}, this host {PROTOCOL_VERSION}"
            self._set_state(SourceState.LOST, self.stats.last_error)
            return False
        self._adopt_hello(hello)
        ser.write(encode(Command(T_START)))
        self._handle(early, time.monotonic())
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self._set_state(SourceState.CONNECTED, f"device {hello.device_id:#x} {hello.fs:g} Hz {','.join(hello.leads)}")
        last_bytes = last_samples = last_ping = time.monotonic()
        try:
            while not self._closed.is_set():
                data = ser.read(max(1, ser.in_waiting))
                now = time.monotonic()
                if data:
                    last_bytes = now
                    self.stats.bytes_in += len(data)
                    frames = decoder.feed(data)
                    self.stats.bad_frames = self._bad_before + decoder.stats.bad_frames
                    if self._handle(frames, now):
                        last_samples = now
                        self._set_state(SourceState.STREAMING)
                if now - last_samples > self.stall_s:
                    self._set_state(SourceState.STALLED, f"no samples for {now - last_samples:.1f} s")
                    if now - last_ping > self.stall_s:
                        last_ping = now
                        ser.write(encode(Command(T_PING, int(now * 1000) & 0xFFFFFFFF)))
                # silence, or a cart that answers PINGs but no longer streams (it rebooted behind
                # a UART that stayed open): start over with a fresh handshake
                if now - last_samples > self.silence_s:
                    what = "silent" if now - last_bytes > self.silence_s else "not streaming"
                    self._set_state(SourceState.LOST, f"device {what} for {now - last_samples:.1f} s")
                    return True
        finally:
            self.stats.decoder = decoder.stats.as_dict()
            self._bad_before += decoder.stats.bad_frames
        try:
            ser.write(encode(Command(T_STOP)))
        except Exception:
            pass
        return True

    def _adopt_hello(self, hello: Hello) -> None:
        if self.hello is not None and (hello.fs != self.hello.fs or hello.leads != self.hello.leads):
            log.warning("serial source %s: stream format changed to %g Hz %s", self.port, hello.fs, hello.leads)
        if self._session is not None and hello.session_id != self._session:
            self._rebase = True  # the cart restarted: its index starts again from its power-up
        self._session = hello.session_id
        self.hello = hello
        self._lead_masks = np.array([lead_electrode_mask(lead) for lead in hello.leads], dtype=np.uint16)
        self._lsb = np.asarray(hello.uv_per_lsb, dtype=np.float32)

    def _handle(self, frames: list, now: float) -> bool:
        """Queue the SAMPLES of one read as blocks (consecutive frames merged); True if any."""
        run: list[tuple[int, Samples]] = []
        got = False
        for frame in frames:
            if isinstance(frame, Samples):
                if self.hello is None or frame.n_leads != len(self.hello.leads):
                    continue  # not what HELLO announced: unusable
                start = self._stream_index(frame, now)
                if run and run[-1][0] + run[-1][1].n_rows != start:
                    self._emit(run)
                    run = []
                run.append((start, frame))
                got = True
            elif isinstance(frame, Status):
                self.stats.device_errors = frame.errors
                self.stats.device_dropped_rows = frame.dropped_rows
            elif isinstance(frame, Hello):
                self._adopt_hello(frame)
            elif isinstance(frame, Pong):
                pass
        if run:
            self._emit(run)
        if got:
            self._last_rx_wall = now
        return got

    def _stream_index(self, frame: Samples, now: float) -> int:
        """The stream index of a frame's first row: unwrap the 32-bit count, re-base on restarts."""
        idx = frame.index
        if self._dev_next is not None and not self._rebase:
            ahead = (idx - self._dev_next) % _WRAP
            if ahead < _WRAP // 2:
                dev = self._dev_next + ahead
                self._dev_next = dev + frame.n_rows
                return dev + self._offset
            log.warning("serial source %s: device index went backwards; re-basing", self.port)
        dev = idx
        if self._stream_next is not None:
            fs = self.hello.fs if self.hello else 0.0
            missed = max(0, int(round((now - self._last_rx_wall) * fs)) - frame.n_rows)
            self._offset = self._stream_next + missed - dev
        else:
            self._offset = 0
        self._rebase = False
        self._dev_next = dev + frame.n_rows
        return dev + self._offset

    def _emit(self, run: list[tuple[int, Samples]]) -> None:
        hello = self.hello
        assert hello is not None
        values = np.concatenate([f.values for _, f in run]) if len(run) > 1 else run[0][1].values
        status = np.concatenate([f.status for _, f in run]) if len(run) > 1 else run[0][1].status
        samples = values.astype(np.float32) * self._lsb
        lead_off = None
        if status.any():
            off = (status[:, None] & self._lead_masks[None, :]) != 0
            lead_off = off if off.any() else None
            pacer = np.flatnonzero(status & PACER_BIT).astype(np.int64)
        else:
            pacer = np.zeros(0, dtype=np.int64)
        block = SampleBlock(start=run[0][0], samples=samples, fs=hello.fs, leads=hello.leads, lead_off=lead_off, pacer=pacer)
        self._stream_next = block.stop
        if self._origin is None:
            self._origin = block.start
        self.stats.blocks += 1
        self.stats.samples += block.n
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            try:
                self._queue.get_nowait()  # drop the oldest: the consumer will see a gap
                self.stats.queue_overruns += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(block)
