"""What the fault-injection suite (tests/test_faults.py) shares (no tests here): the daemon as a real
``edge-ecg run`` process with its output kept, a cart excerpt of a real record, a slow hook
program, a private tmpfs for the state directory, and the unit's seccomp filter as a launcher."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from edge_ecg.alarms.control import ControlError, request
from helpers.daemon import REPO, cli_env

SECCOMP_EXEC = Path(__file__).resolve().parent / "seccomp_exec.py"


class DaemonProcess:
    """``edge-ecg run --config CONFIG`` as a process (optionally behind ``prefix``: unshare, seccomp);
    stdout (the journald lines) and stderr are kept with their arrival times."""

    def __init__(self, config: Path, socket: Path, prefix: list[str] | None = None, extra_args: list[str] | None = None) -> None:
        self.socket = socket
        args = list(prefix or []) + [sys.executable, "-m", "edge_ecg", "run", "--config", str(config)] + list(extra_args or [])
        self.proc = subprocess.Popen(args, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self._pumps = [threading.Thread(target=self._pump, args=(s, buf), daemon=True) for s, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._pumps:
            t.start()

    @staticmethod
    def _pump(stream, buf) -> None:
        for line in stream:
            buf.append((time.time(), line.rstrip("\n")))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def journal(self, word: str) -> list[str]:
        return [line for _, line in list(self.out) if word in line]

    def wait_for(self, check: Callable[[], object], timeout_s: float, what: str) -> object:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            got = check()
            if got:
                return got
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) while waiting for {what}: {self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: {self.tail()}")

    def status(self) -> dict | None:
        try:
            return request(self.socket, {"cmd": "status"}, timeout_s=5)
        except ControlError:
            return None

    def stream_t(self) -> float:
        st = self.status()
        return float(st["t"]) if st else 0.0

    def tail(self, n: int = 15) -> str:
        return "\n".join(line for _, line in (self.err[-n:] + self.out[-n:]))

    def terminate(self, timeout_s: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop on SIGTERM within {timeout_s} s: {self.tail()}")
        finally:
            for t in self._pumps:
                t.join(2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for t in self._pumps:
            t.join(2)


def write_config(path: Path, source: str, state: Path, socket: Path, *, bundles: list[Path] = (), sinks: dict | None = None, evidence: bool = True) -> Path:
    lines = [f'source = "{source}"']
    for b in bundles:
        lines += ["[[bundle]]", f'path = "{b}"']
    lines += ["[sinks]", f'state_dir = "{state}"', f'control_socket = "{socket}"', "stdout = true", f"evidence = {'true' if evidence else 'false'}"]
    for k, v in (sinks or {}).items():
        lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def corrupt_bundle(src: Path, dst: Path) -> Path:
    """A copy of a real bundle with one byte of its INT8 model flipped (a bad flash, a bad download)."""
    shutil.copytree(src, dst)
    model = dst / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return dst


def slow_hook(folder: Path, seconds: float = 60.0) -> tuple[list[str], Path]:
    """A real hook program that records the event it was handed (its stdin) at once, then takes ``seconds``."""
    got = folder / "hook-got.jsonl"
    script = folder / "slow_hook.py"
    script.write_text(
        "import json, os, sys, time\n"
        "ev = json.loads(sys.stdin.readline())\n"
        f"with open({str(got)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'seq': ev.get('seq'), 'kind': ev.get('kind'), 'alarm': ev.get('alarm'), 'priority': ev.get('priority'), 'wall': time.time()}) + '\\n')\n"
        f"time.sleep({seconds})\n"
    )
    return [sys.executable, str(script)], got


def read_jsonl(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def tmpfs_prefix(mountpoint: Path, size: str, fill: bool) -> list[str] | None:
    """``unshare`` arguments that run the command in a private mount namespace with a real tmpfs of
    ``size`` on ``mountpoint`` (filled to the last byte first when ``fill``), or None when this
    machine allows neither a root mount namespace nor a user+mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    script = 'mount -t tmpfs -o "size=$1,mode=0700" tmpfs "$2" || exit 97; '
    if fill:
        script += 'head -c 100000000 /dev/zero > "$2/filler" 2>/dev/null; '
    script += 'shift 2; exec "$@"'
    for flags in (["-m"], ["-r", "-m"]):
        probe = subprocess.run([unshare, *flags, "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0" && echo ok', str(mountpoint)],
                               capture_output=True, text=True, timeout=30)
        if probe.stdout.strip() == "ok":
            return [unshare, *flags, "sh", "-c", script, "tmpfs-state", size, str(mountpoint)]
    return None


def seccomp_prefix(unit: Path) -> tuple[list[str] | None, str]:
    """The launcher that loads the unit's own ``SystemCallFilter=`` (expanded by systemd-analyze) with
    libseccomp and execs the daemon, or (None, why not) when this machine lacks either."""
    if shutil.which("systemd-analyze") is None:
        return None, "systemd-analyze is not installed"
    probe = subprocess.run([sys.executable, str(SECCOMP_EXEC), "--unit", str(unit), "--check"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return None, probe.stderr.strip() or probe.stdout.strip()
    return [sys.executable, str(SECCOMP_EXEC), "--unit", str(unit), "--"], probe.stdout.strip()
