"""Playing a WAV on the unit's speaker through ALSA with ``aplay`` (alsa-utils).

Why ``aplay`` and not a Python audio library: it is in every Debian/Ubuntu (JetPack) image, needs
no wheel, talks to ALSA directly (``hw:``, ``plughw:``, ``default``/dmix), and a process per burst
gives the two properties the alarm path needs for free: playback never blocks the caller, and
silencing is ``terminate()``. A missing device, a busy device or a missing ``aplay`` show up as
a non-zero exit (or ``FileNotFoundError``) that the sounder turns into a technical alarm.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Playback:
    """One running ``aplay``; ``poll()`` is None while it plays."""

    proc: subprocess.Popen
    what: str
    killed: bool = False

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.killed = True
            self.proc.terminate()
            try:
                self.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(1.0)

    def error(self) -> str:
        """The last line ``aplay`` wrote to stderr (why it failed)."""
        try:
            err = self.proc.stderr.read() if self.proc.stderr else b""
        except (OSError, ValueError):
            err = b""
        lines = [l for l in err.decode("utf-8", "replace").splitlines() if l.strip()]
        return lines[-1].strip() if lines else f"aplay exited with {self.proc.returncode}"

    def close(self) -> None:
        if self.proc.stderr:
            self.proc.stderr.close()


class AplayPlayer:
    """Starts ``aplay -q -D DEVICE FILE``; ``OSError`` when aplay itself cannot be run."""

    def __init__(self, device: str = "default", aplay: str = "aplay") -> None:
        self.device = device
        self.aplay = aplay

    def available(self) -> str | None:
        """None when the program exists, else why not."""
        if shutil.which(self.aplay) is None:
            return f"{self.aplay} not found (install alsa-utils)"
        return None

    def play(self, wav: Path, what: str = "") -> Playback:
        proc = subprocess.Popen([self.aplay, "-q", "-D", self.device, str(wav)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return Playback(proc, what or wav.name)
