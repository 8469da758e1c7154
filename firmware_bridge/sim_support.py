"""What the device simulators share: the ``--faults`` syntax, the pseudo-terminal "cable", spawning.

``edge-ecg cart-sim`` (a cart) and ``edge-ecg monitor-sim`` (an IntelliVue monitor) both sit on a
pty pair the way a USB serial device does, keep a stable symlink to it as udev's
``/dev/serial/by-id/...`` would, can be "unplugged" (pty and link gone) and replugged (a new
``/dev/pts/N``), and take faults as ``KIND@START[+DURATION][:PARAM]``.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import sys
import termios
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence


class FaultSpecError(ValueError):
    """A ``--faults`` item that cannot be parsed; the message quotes the item."""


@dataclass(frozen=True)
class Fault:
    kind: str
    start_s: float
    duration_s: float = 0.0
    param: str = ""

    def active(self, t: float) -> bool:
        return self.start_s <= t < self.start_s + self.duration_s


def parse_fault_spec(spec: str, kinds: Sequence[str], defaults: Mapping[str, str], need_duration: Sequence[str],
                     check: Callable[[Fault, str], None] | None = None) -> list[Fault]:
    """``"unplug@30+1.5,garbage@12:300"`` -> faults of the given kinds; ``FaultSpecError`` names the bad item.

    ``check(fault, item)`` may refuse a kind-specific parameter by raising ``FaultSpecError``."""
    faults = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        try:
            kind, rest = item.split("@", 1)
            kind = kind.strip()
            rest, _, param = rest.partition(":")
            start, _, dur = rest.partition("+")
            fault = Fault(kind, float(start), float(dur) if dur else 0.0, param or defaults.get(kind, ""))
        except ValueError:
            raise FaultSpecError(f"fault {item!r}: expected KIND@START[+DURATION][:PARAM]") from None
        if fault.kind not in kinds:
            raise FaultSpecError(f"fault {item!r}: unknown kind {fault.kind!r} (known: {', '.join(kinds)})")
        if fault.start_s < 0 or fault.duration_s < 0:
            raise FaultSpecError(f"fault {item!r}: times must not be negative")
        if fault.kind in need_duration and fault.duration_s <= 0:
            raise FaultSpecError(f"fault {item!r}: {fault.kind} needs a +DURATION")
        if check is not None:
            check(fault, item)
        faults.append(fault)
    return faults


class PtyDevice:
    """The "USB" side of a simulated serial device: a raw pty pair and an optional stable link.

    A subclass sets ``self.link`` (a path or None) and calls ``_plug()`` / ``_unplug()``; it reads
    and writes ``self.master`` (non-blocking). ``device_path`` is what a host opens.
    """

    link: Path | None = None
    master: int | None = None
    slave: int | None = None
    path: str = ""

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation on the device side either
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.path = os.ttyname(slave)
        if self.link:
            tmp = self.link.with_name(self.link.name + ".new")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)

    def _unplug(self) -> None:
        if self.link and self.link.is_symlink():
            self.link.unlink()
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = None

    @property
    def device_path(self) -> str:
        """What a host opens: the stable link if there is one, else the current pty."""
        return str(self.link) if self.link else self.path

    def _unread(self) -> int:
        """Bytes written to the pty that the host has not read yet."""
        try:
            return struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0"))[0]
        except (OSError, TypeError):
            return 0


def spawn_simulator(command: str, target: str | os.PathLike[str], *args: str, timeout_s: float = 60.0,
                    cwd: str | os.PathLike[str] | None = None):
    """Start ``edge-ecg COMMAND TARGET ARGS...`` as its own process; returns ``(process, device path)``.

    For tests and demos that need a real device process (its own pty, killed or exiting on its
    own). The caller terminates the process when done."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "edge_ecg", command, os.fspath(target), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline().strip() if ready else ""
    if not line:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"{command} {target}: no device path within {timeout_s} s: {err[-2000:]}")
    return proc, line
