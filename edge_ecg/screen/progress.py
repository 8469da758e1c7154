"""A progress bar on stderr: records done, records/s and ETA.

Hand-written (about 40 lines) because the appliance does not carry tqdm; it redraws in place on a
terminal and prints a line every few seconds when stderr is a file or pipe (systemd journal, CI).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    s = int(round(seconds))
    return f"{s // 60:02d}:{s % 60:02d}" if s < 3600 else f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Counts records; ``update(n)`` after each batch, ``close()`` prints the final line."""

    def __init__(self, total: int | None, stream: TextIO | None = None, label: str = "screen", width: int = 28,
                 min_interval_s: float = 0.2, line_interval_s: float = 5.0) -> None:
        self.total = None if total is None else max(int(total), 0)  # None: streamed, not known ahead
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._interval = min_interval_s if self._tty else line_interval_s
        self._last = -1e9

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        el = self.elapsed_s
        return self.done / el if el > 0 else 0.0

    def line(self) -> str:
        if self.total is None:
            return f"{self.label}: {self.done} records {self.rate:6.1f} rec/s  {_fmt_eta(self.elapsed_s)} elapsed"
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} records "
                f"{rate:6.1f} rec/s  ETA {_fmt_eta(eta)}")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self._interval or (self.total is not None and self.done >= self.total):
            self._last = now
            self._draw()

    def _draw(self, final: bool = False) -> None:
        if self._tty:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self._draw(final=True)
        elif self._last < 0 or self.total is None or self.done < self.total:
            self._draw()
