"""Result files: what an evaluation or benchmark measured, with how and where, as JSON.

Figures in ``docs/`` are generated from these files, never typed by hand, so a rerun that changes
a number changes the page. Every file carries the command that produced it, the commit it ran on,
the machine and the date, so a reader can tell a stale figure from a fresh one.

The envelope::

    {"name": ..., "command": ..., "commit": ..., "dirty": bool, "machine": {...},
     "date": "YYYY-MM-DDTHH:MM:SSZ", "results": {...}}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"


def machine() -> dict[str, Any]:
    """What the numbers ran on: CPU model, core count, memory, OS, Python (no host names)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "arch": platform.machine(),
        "os": platform.system(),
        "python": platform.python_version(),
    }


def commit() -> tuple[str | None, bool]:
    """The checkout's commit and whether its tracked files differ from it (None outside git).

    Other results files do not count: a batch of evaluations run one after another on one commit
    rewrites them, and each would otherwise call the next "dirty" although no code changed."""
    root = RESULTS_DIR.parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, False
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                f":(exclude){RESULTS_DIR.relative_to(root).as_posix()}"],
                               cwd=root, capture_output=True, text=True, timeout=10)
        return head.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False


def envelope(name: str, results: dict[str, Any], command: str | None = None) -> dict[str, Any]:
    """``results`` wrapped with the command, commit, machine and date that produced them."""
    sha, dirty = commit()
    return {
        "name": name,
        "command": command if command is not None else " ".join(["edge-ecg", *sys.argv[1:]]),
        "commit": sha,
        "dirty": dirty,
        "machine": machine(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "results": results,
    }


def write_result(name: str, results: dict[str, Any], command: str | None = None, directory: str | Path | None = None) -> Path:
    """Write ``<directory>/<name>.json`` (default ``docs/results``) atomically; returns its path."""
    out_dir = Path(directory) if directory is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(envelope(name, results, command), indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def read_result(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The envelope of ``<name>.json``."""
    out_dir = Path(directory) if directory is not None else RESULTS_DIR
    return json.loads((out_dir / f"{name}.json").read_text())
