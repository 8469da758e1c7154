"""``PortSource``: a device on a serial port, read by a background thread, as a stream of blocks.

What the cart (``SerialSource``) and a monitor (``IntellivueSource``) share, as pyserial's
``ReaderThread`` separates the thread from the protocol: the reader thread that opens the port,
runs one connection until it fails and reopens it with a doubling backoff; the source's state
(connecting, connected, streaming, stalled, lost, closed) with a callback; and the bounded,
never-blocking hand-over (``BlockQueue``) that gives the consumer ``gap_before`` for every
sample that never arrived. A subclass says how to open its port and how to run one connection.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterator

from edge_ecg.stream.block import SampleBlock, SourceState
from edge_ecg.stream.block_queue import BlockQueue

log = logging.getLogger(__name__)


def port_path(port: str) -> str:
    """A device path; a bare udev name ("usb-EdgeECG_Cart_1234-if00") means its by-id link."""
    port = str(port)
    return port if ("/" in port or "://" in port) else f"/dev/serial/by-id/{port}"


class PortSource:
    """Subclasses set ``label`` (for log lines) and implement ``_open_port()`` (a configured,
    open pyserial port), ``_connection(ser) -> bool`` (one connection until the link fails, goes
    silent or the source closes; True when it streamed, so the next attempt comes soon) and may
    override ``_release_port(ser)``. ``stats`` needs ``last_error`` and ``samples_missing``."""

    label = "source"
    close_timeout_s = 2.0  # how long close() waits for the reader (to send STOP / release)

    def __init__(self, port: str, *, stats: Any, backoff_s: tuple[float, float], queue_blocks: int, read_timeout_s: float,
                 on_state: Callable[[SourceState, str], None] | None, exclusive: bool) -> None:
        self.port = port_path(port)
        self.backoff_s = backoff_s
        self.read_timeout_s = read_timeout_s
        self.exclusive = exclusive
        self.on_state = on_state
        self.stats = stats
        self._blocks = BlockQueue(queue_blocks)
        self._closed = threading.Event()
        self._state = SourceState.CONNECTING
        self._state_since = time.monotonic()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"{self.label} {self.port}", daemon=True)

    # ------------------------------------------------------------------ consumer side
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
        """The next block (with ``gap_before`` and ``gap_reason`` set against the previous one
        handed out, queue drops included), or ``None`` if none arrived within ``timeout``."""
        block = self._blocks.get(timeout)
        self.stats.samples_missing = self._blocks.samples_missing
        return block

    def __iter__(self) -> Iterator[SampleBlock]:
        """Yield blocks until ``close()``; waits in short slices so closing ends the loop promptly."""
        while True:
            block = self.read(timeout=0.1)
            if block is not None:
                yield block
            elif self._closed.is_set() and self._blocks.empty():
                return

    def close(self) -> None:
        """Stop the reader (it ends its connection politely) and release the port."""
        self._closed.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.close_timeout_s)
        self._set_state(SourceState.CLOSED, "closed")

    def __enter__(self) -> "PortSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reader thread
    def _put(self, block: SampleBlock) -> None:
        """Hand a block over; never blocks (a consumer far behind loses the oldest: a gap)."""
        self._blocks.put(block)
        self.stats.queue_overruns = self._blocks.overruns

    def _set_state(self, state: SourceState, detail: str = "") -> None:
        with self._lock:
            if state == self._state or self._state == SourceState.CLOSED:
                return
            self._state = state
            self._state_since = time.monotonic()
        log.info("%s %s: %s %s", self.label, self.port, state.value, detail)
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:  # a broken callback must not kill the reader
                log.exception("%s %s: on_state callback failed", self.label, self.port)

    def _open_port(self):
        raise NotImplementedError

    def _connection(self, ser) -> bool:
        raise NotImplementedError

    def _release_port(self, ser) -> None:
        ser.close()

    def _run(self) -> None:
        import serial  # pyserial

        delay = self.backoff_s[0]
        while not self._closed.is_set():
            try:
                ser = self._open_port()
            except (serial.SerialException, OSError, ValueError) as exc:
                self.stats.last_error = str(exc)
                self._set_state(SourceState.LOST, f"cannot open: {exc}")
                self._closed.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            try:
                if self._connection(ser):
                    delay = self.backoff_s[0]
            except (serial.SerialException, OSError) as exc:
                self.stats.last_error = str(exc)
                self._set_state(SourceState.LOST, f"link error: {exc}")
                delay = self.backoff_s[0]  # it was working a moment ago: retry soon
            except Exception as exc:  # a bug must degrade to "lost", never kill the thread
                log.exception("%s %s: reader failed", self.label, self.port)
                self.stats.last_error = repr(exc)
                self._set_state(SourceState.LOST, f"reader error: {exc!r}")
            finally:
                try:
                    self._release_port(ser)
                except Exception:
                    pass
            if not self._closed.is_set():
                self._closed.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
