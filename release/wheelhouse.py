"""The wheels of one lock, downloaded once and kept under ``.cache/wheelhouse/<target>-cpXY-<lock hash>/``.

The folder's name carries the sha256 of the lock text, so a changed lock gets a new folder and an
unchanged one is reused without touching the network; every wheel's sha256 is checked against
the lock each time it is used (a truncated download or a swapped file is caught, not shipped).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from release.targets import REPO, Target, tag

CACHE = Path(os.environ.get("EDGE_ECG_RELEASE_CACHE", REPO / ".cache"))
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)\s+--hash=sha256:(?P<sha>[0-9a-f]{64})\s+#\s+(?P<file>\S+\.whl)\s*$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str
    filename: str


def read_lock(path: Path) -> list[Pin]:
    pins = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise SystemExit(f"{path}:{n}: not a lock line (name==version --hash=sha256:... # file.whl)")
        pins.append(Pin(m["name"], m["version"], m["sha"], m["file"]))
    return pins


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lock_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def verify(folder: Path, pins: list[Pin]) -> list[str]:
    """Problems with ``folder`` against the pins (missing or mismatched wheels)."""
    problems = []
    for p in pins:
        f = folder / p.filename
        if not f.is_file():
            problems.append(f"{p.filename} missing")
        elif sha256(f) != p.sha256:
            problems.append(f"{p.filename} sha256 does not match the lock")
    return problems


def ensure(target: Target, python: str, log=print) -> Path:
    """The verified wheelhouse of ``target``/``python``: from the cache, or downloaded by the lock's hashes."""
    lock = target.lock(python)
    if not lock.is_file():
        raise SystemExit(f"{lock} is missing: run `make lock` (needs network and Python {python})")
    pins = read_lock(lock)
    folder = CACHE / "wheelhouse" / f"{target.name}-{tag(python)}-{lock_key(lock)}"
    if folder.is_dir() and not verify(folder, pins):
        log(f"wheelhouse {folder.name}: {len(pins)} wheels from the cache")
        return folder
    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"wheelhouse {folder.name}: downloading {len(pins)} wheels for {target.machine} {tag(python)}")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
           *[a for p in target.platforms() for a in ("--platform", p)], "--dest", str(tmp), "-r", str(lock)]
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull)
    env.pop("PIP_FIND_LINKS", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"wheelhouse {folder.name}: pip download failed:\n{out.stderr[-3000:]}")
    problems = verify(tmp, pins)
    if problems:
        raise SystemExit(f"wheelhouse {folder.name}: " + "; ".join(problems))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    for stale in folder.parent.glob(f"{target.name}-{tag(python)}-*"):  # wheelhouses of earlier locks
        if stale != folder and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return folder
