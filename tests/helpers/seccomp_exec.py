"""Run a command under the system-call filter of a systemd unit, without systemd as PID 1.

    python tests/helpers/seccomp_exec.py --unit systemd/edge-ecg.service -- COMMAND ARGS...
    python tests/helpers/seccomp_exec.py --unit systemd/edge-ecg.service --check

Why: the test machines run the daemon as a process, not as a unit (systemd is not PID 1 in CI
containers), yet the unit's ``SystemCallFilter=`` must not break it. This reads the unit's
``SystemCallFilter=`` and ``SystemCallErrorNumber=`` lines, expands the ``@set`` names with
``systemd-analyze syscall-filter`` (systemd's own tables, not a copy), adds what systemd always
allows (execve, exit, exit_group, getrlimit, rt_sigreturn, sigreturn and the time/sleep calls of
``@default``), and loads the same allow-list with libseccomp (``libseccomp.so.2``, through ctypes)
before exec'ing the command. A call outside the list fails with the unit's errno (EPERM), or
kills the process when the unit sets no errno. Test tooling only; nothing here ships.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import os
import subprocess
import sys
from pathlib import Path

ALWAYS = ("execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn")
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000


def SCMP_ACT_ERRNO(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


def unit_filter(unit: Path) -> tuple[list[str], list[str], str | None]:
    """(allowed names, denied names, errno name) from the unit's SystemCallFilter=/SystemCallErrorNumber= lines."""
    allow: list[str] = []
    deny: list[str] = []
    err = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("SystemCallFilter="):
            value = line.split("=", 1)[1].strip()
            if value.startswith("~"):
                deny += value[1:].split()
            else:
                allow += value.split()
        elif line.startswith("SystemCallErrorNumber="):
            err = line.split("=", 1)[1].strip()
    return allow, deny, err


def group_table() -> dict[str, list[str]]:
    """Every ``@set`` systemd knows, with its members (names or nested sets)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True, check=True, timeout=60).stdout
    table: dict[str, list[str]] = {}
    current = None
    for raw in out.splitlines():
        if raw.startswith("@"):
            current = raw.split()[0]
            table[current] = []
        elif not raw.strip():
            current = None
        elif current and raw.startswith("    ") and not raw.strip().startswith("#"):
            table[current].append(raw.strip())
    return table


def expand(names: list[str], table: dict[str, list[str]]) -> set[str]:
    done: set[str] = set()
    todo = list(names)
    seen_sets: set[str] = set()
    while todo:
        n = todo.pop()
        if n.startswith("@"):
            if n in seen_sets:
                continue
            seen_sets.add(n)
            if n not in table:
                raise SystemExit(f"seccomp_exec: systemd-analyze does not know the set {n}")
            todo += table[n]
        else:
            done.add(n)
    return done


def load_filter(allowed: set[str], default_action: int) -> int:
    """Install the filter on this process (and what it execs); returns how many calls were allowed."""
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(path, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise SystemExit("seccomp_exec: seccomp_init failed")
    n = 0
    for name in sorted(allowed):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue  # not a call on this architecture (e.g. the 32-bit variants)
        rc = lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)
        if rc == 0:
            n += 1
    rc = lib.seccomp_load(ctx)
    if rc != 0:
        raise SystemExit(f"seccomp_exec: seccomp_load failed ({os.strerror(-rc)})")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unit", type=Path, required=True)
    ap.add_argument("--check", action="store_true", help="print what would be allowed and exit")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    allow, deny, err = unit_filter(args.unit)
    if not allow:
        print(f"seccomp_exec: {args.unit} has no SystemCallFilter= allow list", file=sys.stderr)
        return 2
    try:
        table = group_table()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"seccomp_exec: systemd-analyze syscall-filter failed: {exc}", file=sys.stderr)
        return 2
    allowed = (expand(allow, table) | set(ALWAYS) | expand(["@default"], table)) - expand(deny, table)
    action = SCMP_ACT_KILL_PROCESS if err is None else SCMP_ACT_ERRNO(getattr(errno, err))
    if args.check:
        try:
            ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
        except OSError:
            print("seccomp_exec: libseccomp.so.2 is not installed", file=sys.stderr)
            return 2
        print(f"{len(allowed)} calls allowed from {' '.join(allow)}{' less ' + ' '.join(deny) if deny else ''}; others: {err or 'kill'}")
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("seccomp_exec: no command", file=sys.stderr)
        return 2
    load_filter(allowed, action)
    os.execvp(command[0], command)
    return 127


if __name__ == "__main__":
    sys.exit(main())
