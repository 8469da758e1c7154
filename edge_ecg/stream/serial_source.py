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
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_ecg.stream.block import SampleBlock, SourceState
from edge_ecg.stream.port_source import PortSource
from firmware_bridge.codec import Decoder, encode
from firmware_bridge.frames import PACER_BIT, PROTOCOL_VERSION, T_GET_HELLO, T_PING, T_START, T_STOP, Command, Hello, Pong, Samples, Status, lead_electrode_mask
from firmware_bridge.sample_index import GapReason, Placement, SampleIndexTracker

log = logging.getLogger(__name__)

# The cart's USB serial-number string (firmware_bridge/PROTOCOL.md, "USB identity"): "EECG-" and the
# 16 upper-case hex digits of the HELLO device id. udev's by-id link carries it in its name.
CART_SERIAL = re.compile(r"EECG-([0-9A-F]{16})")


def cart_serial(device_id: int) -> str:
    """The USB serial-number string a cart with this HELLO device id reports."""
    return f"EECG-{device_id & 0xFFFFFFFFFFFFFFFF:016X}"


def expected_device_id(port: str, sysfs: Path = Path("/sys/class/tty")) -> int | None:
    """The device id the cart on ``port`` must announce, if the port says which cart it is.

    From the port's name (``/dev/serial/by-id/usb-EdgeECG_EdgeECG_Cart_EECG-...-if00``), else from
    the USB serial number of the tty's parent device in sysfs (``/dev/edge-ecg-cart`` ->
    ``ttyACM0`` -> its USB device's ``serial``); None when neither names a cart (a pty, a
    monitor cable), in which case HELLO's protocol version is all that is checked.
    """
    m = CART_SERIAL.search(port)
    if m:
        return int(m.group(1), 16)
    try:
        node = (sysfs / Path(os.path.realpath(port)).name / "device").resolve(strict=True)
    except OSError:
        return None
    for parent in (node, *node.parents):
        if not str(parent).startswith("/sys/devices/"):
            break
        serial_file = parent / "serial"
        if serial_file.is_file():
            try:
                m = CART_SERIAL.fullmatch(serial_file.read_text().strip())
            except OSError:
                return None
            return int(m.group(1), 16) if m else None
    return None


def hold_exclusive(fd: int) -> bool:
    """``TIOCEXCL`` on a tty: further ``open()``s of it fail with EBUSY (except with CAP_SYS_ADMIN),
    so no other process can write STOP into the cart's port while we stream. True if it took."""
    import fcntl
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCEXCL)
        return True
    except OSError as exc:
        log.warning("TIOCEXCL on fd %d failed: %s", fd, exc)
        return False


def release_exclusive(fd: int) -> None:
    import fcntl
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCNXCL)
    except OSError:
        pass


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
    index_anomalies: dict = field(default_factory=dict)  # GapReason value -> count (jump, backwards, restart, resumed)
    wrong_device: int = 0  # HELLOs from a device that is not the cart the port names (never streamed)


class SerialSource(PortSource):
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
    - ``exclusive`` (True): hold the port exclusively: an advisory lock (flock) that a second
      reader respects, and ``TIOCEXCL`` so that any other ``open()`` of the tty fails with EBUSY
      (nobody can send the cart STOP behind our back).
    - ``expect_device_id``: the HELLO device id the cart must announce (default: from the port's
      by-id name or its USB serial number, see ``expected_device_id``); a device that announces
      another id is not streamed from.
    - ``start`` (True): start the reader thread now (else call ``start()``).

    Use::

        with SerialSource("/dev/serial/by-id/usb-EdgeECG_Cart-if00") as src:
            for block in src:            # blocks until data or close(); or:
                ...
            block = src.read(timeout=0.1)   # None when nothing arrived in time
            src.state, src.hello, src.stats

    Blocks carry ``start`` (the stream's sample index), float32 microvolts (ADC counts times the
    HELLO's units per LSB), per-sample per-lead ``lead_off`` from the electrode bits, ``pacer`` row
    offsets, and ``gap_before`` with its ``gap_reason``. The index is placed by
    ``SampleIndexTracker`` (firmware_bridge.sample_index): unwrapped past 2**32; a frame whose
    index leaps implausibly far ahead or goes back, or a new HELLO session (the cart restarted),
    is re-based so the stream index keeps increasing by no more than the wall clock allows, and
    later frames are never trimmed away.
    """

    label = "serial source"

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
        expect_device_id: int | None = None,
        start: bool = True,
    ) -> None:
        super().__init__(port, stats=SourceStats(), backoff_s=backoff_s, queue_blocks=queue_blocks, read_timeout_s=read_timeout_s,
                         on_state=on_state, exclusive=exclusive)
        self.baudrate = baudrate
        self.stall_s = stall_s
        self.silence_s = silence_s
        self.handshake_s = handshake_s
        self.expect_device_id = expect_device_id if expect_device_id is not None else expected_device_id(self.port)
        self.hello: Hello | None = None
        # index bookkeeping (reader thread only)
        self._session: int | None = None
        self._index = SampleIndexTracker()
        self._lead_masks = np.zeros(0, dtype=np.uint16)
        self._lsb = np.zeros(0, dtype=np.float32)
        self._bad_before = 0  # bad frames of earlier connections
        if start:
            self.start()

    # ------------------------------------------------------------------ reader thread
    def _open_port(self):
        import serial  # pyserial

        # exclusive: an advisory lock (flock) so that no second reader (another source, a modem
        # manager probing ttyACM devices) splits the byte stream with us, and TIOCEXCL so that no
        # other open() of the tty succeeds (nobody can send the cart STOP behind our back)
        ser = serial.Serial(self.port, self.baudrate, timeout=self.read_timeout_s, write_timeout=1.0, exclusive=self.exclusive)
        if self.exclusive:
            hold_exclusive(ser.fileno())
        return ser

    def _release_port(self, ser) -> None:
        if self.exclusive:
            release_exclusive(ser.fileno())
        ser.close()

    def _connection(self, ser) -> bool:
        return self._session_loop(ser)

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
        if self.expect_device_id is not None and hello.device_id != self.expect_device_id:
            self.stats.wrong_device += 1
            self.stats.last_error = (f"{self.port}: the device answered HELLO as {cart_serial(hello.device_id)}, "
                                     f"but this port belongs to cart {cart_serial(self.expect_device_id)}; not streaming from it")
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
            self._index.restart()  # the cart restarted: its index starts again from its power-up
        self._index.set_rate(hello.fs)
        self._session = hello.session_id
        self.hello = hello
        self._lead_masks = np.array([lead_electrode_mask(lead) for lead in hello.leads], dtype=np.uint16)
        self._lsb = np.asarray(hello.uv_per_lsb, dtype=np.float32)

    def _handle(self, frames: list, now: float) -> bool:
        """Queue the SAMPLES of one read as blocks (consecutive frames merged); True if any."""
        run: list[tuple[Placement, Samples]] = []
        got = False
        for frame in frames:
            if isinstance(frame, Samples):
                if self.hello is None or frame.n_leads != len(self.hello.leads):
                    continue  # not what HELLO announced: unusable
                placed = self._index.place(frame.index, frame.n_rows, now)
                if placed.anomaly:
                    self._note_anomaly(placed)
                if run and (placed.gap or run[-1][0].start + run[-1][1].n_rows != placed.start):
                    self._emit(run)
                    run = []
                run.append((placed, frame))
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
        return got

    def _note_anomaly(self, placed: Placement) -> None:
        reason = placed.reason.value
        self.stats.index_anomalies[reason] = self.stats.index_anomalies.get(reason, 0) + 1
        if placed.reason is GapReason.RESTART:
            log.info("serial source %s: new cart session; index re-based at stream %d (gap %d)", self.port, placed.start, placed.gap)
        else:
            log.warning("serial source %s: frame index %d is %+d from the expected one (%s); placed at stream %d with a gap of %d",
                        self.port, placed.device_index, placed.device_ahead, reason, placed.start, placed.gap)

    def _emit(self, run: list[tuple[Placement, Samples]]) -> None:
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
        first = run[0][0]
        reason = "" if first.reason is GapReason.CONTIGUOUS else first.reason.value
        block = SampleBlock(start=first.start, samples=samples, fs=hello.fs, leads=hello.leads, lead_off=lead_off, pacer=pacer,
                            gap_before=first.gap, gap_reason=reason)
        self.stats.blocks += 1
        self.stats.samples += block.n
        self._put(block)
