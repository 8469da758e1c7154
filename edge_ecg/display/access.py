"""Who may act from the page: the local secret, a lockout against guessing, and the request's origin.

Viewing is open to whoever can reach the socket (loopback or a 0600 Unix socket). Acknowledge,
audio pause and rhythm relearn need the secret (a PIN or token, see ``DisplayConfig.secret``),
compared in constant time; five wrong secrets within a minute lock every action out for 30 s, so
a 4-6 digit PIN cannot be walked through. Every attempt, refused or accepted, is logged by the caller
with the origin built here.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Verdict:
    ok: bool
    reason: str = ""
    status: int = 200


@dataclass
class Gate:
    """Checks a presented secret against ``secret()``; ``None`` from it means actions are disabled."""

    secret: Callable[[], str | None]
    max_failures: int = 5
    window_s: float = 60.0
    lockout_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: list[float] = field(default_factory=list)
    _locked_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, presented: object) -> Verdict:
        now = self.clock()
        with self._lock:
            if now < self._locked_until:
                return Verdict(False, f"locked for {self._locked_until - now:.0f} s after {self.max_failures} wrong secrets", 429)
            try:
                expected = self.secret()
            except Exception as exc:  # an unreadable token file refuses, it does not crash the server
                return Verdict(False, f"secret unavailable: {exc}", 503)
            if not expected:
                return Verdict(False, "control from the display is disabled (no pin or token_file in [display])", 403)
            if not isinstance(presented, str) or not presented:
                return Verdict(False, "secret required", 401)
            if hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
                self._failures.clear()
                return Verdict(True)
            self._failures = [t for t in self._failures if now - t < self.window_s] + [now]
            if len(self._failures) >= self.max_failures:
                self._locked_until = now + self.lockout_s
                self._failures.clear()
            return Verdict(False, "wrong secret", 403)
