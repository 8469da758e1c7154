"""systemd's notify protocol over the stdlib: one datagram per message to ``$NOTIFY_SOCKET``.

Why not a library: the protocol is "send ``KEY=VALUE`` lines as one AF_UNIX datagram" (an
``@`` prefix means the abstract namespace), which is smaller than any dependency. The watchdog
pings only while the pipeline reports progress, so a stalled pipeline stops pinging and systemd
restarts it (``WatchdogSec=``, ``Restart=on-failure``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages; a no-op when not started by systemd (no ``NOTIFY_SOCKET``)."""

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address = address or None
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # never block on a full receiver queue: a stale ping delivered late would lie about health
            self._sock.setblocking(False)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; False (logged once per failure) if it cannot."""
        if self._sock is None or self.address is None:
            return False
        msg = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with self._lock:
            try:
                self._sock.sendto(msg, addr)
                return True
            except OSError as exc:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                return False

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Half of ``WATCHDOG_USEC`` (systemd's advice), or None when no watchdog is asked for us."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        return max(0.05, int(usec) / 1e6 / 2)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer; watchdog off", usec)
        return None


class Watchdog:
    """Pings ``WATCHDOG=1`` every ``interval_s`` while ``healthy()`` says the pipeline progresses.

    ``healthy()`` returns ``(ok, reason)``. When it is not ok the ping is skipped and ``STATUS=``
    says why, so ``systemctl status`` shows the reason the service is about to be restarted.
    """

    def __init__(self, notifier: Notifier, interval_s: float, healthy: Callable[[], tuple[bool, str]], status: Callable[[], str] | None = None) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self.healthy = healthy
        self.status = status
        self.pings = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-ecg-watchdog", daemon=True)

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                ok, reason = self.healthy()
            except Exception as exc:  # a broken health check is itself a stall
                ok, reason = False, f"health check failed: {exc}"
            if ok:
                self.notifier.watchdog()
                self.pings += 1
                if self.status is not None:
                    self.notifier.status(self.status())
            else:
                self.skipped += 1
                self.notifier.status(f"stalled: {reason}")
                log.error("watchdog: not pinging, pipeline stalled: %s", reason)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 1)
