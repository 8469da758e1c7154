"""A throwaway copy of this machine, booted with systemd as PID 1, with no network (no tests here).

What it is: the root filesystem is an overlay of ``/`` (every write lands in a temporary upper
folder and vanishes with it), in new mount, PID, network (``unshare -n``: loopback only, down),
and cgroup namespaces, with a private ``/dev`` (its own pty instance) and ``/run``, and a cgroup
subtree of its own that is removed afterwards. Inside, ``/lib/systemd/systemd`` runs as PID 1 up to
``basic.target``: ``dpkg -i``, ``systemctl``, ``journalctl``, ``Type=notify`` and the units' dependencies
are the real ones. A test runs commands in it with ``run()`` (``nsenter``), and shares files through
``bind`` folders, mounted at the same path inside and out.

Needs root and a kernel that allows these namespaces and overlayfs (the CI machine does).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

_OUTER = r"""
set -e
CG="$1"; shift
# a cgroup subtree of our own in every hierarchy, under the cgroup we are in (never above it)
while IFS=: read -r id ctrl path; do
  if [ -z "$ctrl" ]; then d=/sys/fs/cgroup/unified; else c=${ctrl#name=}; d=/sys/fs/cgroup/$c; fi
  [ -d "$d" ] || continue
  mkdir -p "$d$path/$CG"
  if [ -f "$d$path/$CG/cpuset.cpus" ]; then cat "$d$path/cpuset.cpus" > "$d$path/$CG/cpuset.cpus"; cat "$d$path/cpuset.mems" > "$d$path/$CG/cpuset.mems"; fi
  echo $$ > "$d$path/$CG/cgroup.procs"
done < /proc/self/cgroup
exec unshare --cgroup --pid --fork --mount --net sh "$@"
"""

_BOOT = r"""
set -e
W="$1"; shift
R=$W/root
mkdir -p $W/upper $W/work $R
mount -t overlay overlay -o lowerdir=/,upperdir=$W/upper,workdir=$W/work $R
mount -t proc proc $R/proc
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
mount --rbind /sys $R/sys
mount -t tmpfs -o mode=755 tmpfs $R/sys/fs/cgroup
if [ -d /sys/fs/cgroup/unified ] || [ -d /sys/fs/cgroup/systemd ]; then
  for c in $(ls /sys/fs/cgroup); do
    case $c in unified|systemd) continue ;; esac
    [ -d /sys/fs/cgroup/$c ] || continue
    mkdir -p $R/sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup $R/sys/fs/cgroup/$c 2>/dev/null || rmdir $R/sys/fs/cgroup/$c
  done
  mkdir -p $R/sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup $R/sys/fs/cgroup/systemd
  mkdir -p $R/sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 $R/sys/fs/cgroup/unified
else
  umount $R/sys/fs/cgroup; mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
fi
mount -t tmpfs -o mode=755 tmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
ln -s pts/ptmx $R/dev/ptmx
for d in null zero urandom random full tty; do touch $R/dev/$d; mount --bind /dev/$d $R/dev/$d; done
mount -t tmpfs tmpfs $R/dev/shm
for b in "$@"; do mkdir -p "$R$b"; mount --bind "$b" "$R$b"; done
cd $R
exec chroot $R /usr/bin/env -i container=edge-ecg-test PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /lib/systemd/systemd --system --unit=basic.target --show-status=false
"""


class SystemdContainer:
    def __init__(self, work: Path, bind: list[Path] | None = None) -> None:
        self.work = Path(work)
        self.bind = [Path(b).resolve() for b in (bind or [])]
        self.cgroup = f"edge-ecg-test-{os.getpid()}-{int(time.time())}"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None  # systemd, PID 1 inside

    def start(self, timeout_s: float = 90.0) -> "SystemdContainer":
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "outer.sh").write_text(_OUTER)
        (self.work / "boot.sh").write_text(_BOOT)
        self.log = open(self.work / "boot.log", "w")
        self.proc = subprocess.Popen(["sh", str(self.work / "outer.sh"), self.cgroup, str(self.work / "boot.sh"), str(self.work), *map(str, self.bind)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + timeout_s
        while self.pid is None and time.monotonic() < end:
            self.pid = self._find_init()
            if self.proc.poll() is not None:
                raise RuntimeError(f"the container did not start: {(self.work / 'boot.log').read_text()[-2000:]}")
            time.sleep(0.1)
        if self.pid is None:
            raise RuntimeError("systemd did not start in the container")
        while time.monotonic() < end:
            out = self.run("systemctl is-system-running", check=False)
            if out.stdout.strip() in ("running", "degraded"):
                return self
            time.sleep(0.3)
        raise RuntimeError(f"systemd in the container never came up: {out.stdout} {self.run('systemctl --failed --no-legend', check=False).stdout}")

    def _find_init(self) -> int | None:
        """systemd: the child of our ``unshare --fork`` (the shell before it ``exec``s into it)."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            for pid in kids + [g for k in kids for g in Path(f"/proc/{k}/task/{k}/children").read_text().split()]:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
        return None

    def run(self, cmd: str | list[str], check: bool = True, timeout: float = 300, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
        """A command inside (as root, in its namespaces and root), with a clean environment."""
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
        full = ["nsenter", "-t", str(self.pid), "-m", "-p", "-n", "-C", "-r", "-w", "env", "-i", *[f"{k}={v}" for k, v in {**base, **(env or {})}.items()], *argv]
        out = subprocess.run(full, capture_output=True, text=True, timeout=timeout, **kw)
        if check and out.returncode != 0:
            raise AssertionError(f"in the container: {shlex.join(argv)} -> {out.returncode}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        return out

    def popen(self, cmd: str, **kw) -> subprocess.Popen:
        base = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root"]
        return subprocess.Popen(["nsenter", "-t", str(self.pid), "-m", "-p", "-n", "-C", "-r", "-w", "env", "-i", *base, "bash", "-c", cmd], **kw)

    def stop(self) -> None:
        if self.pid is None and self.proc is not None:  # interrupted while booting: find it all the same
            time.sleep(0.5)
            self.pid = self._find_init()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # PID 1 of the namespace: the kernel ends everything in it
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.log.close()
        self._remove_cgroups()
        shutil.rmtree(self.work / "upper", ignore_errors=True)
        shutil.rmtree(self.work / "work", ignore_errors=True)

    def _remove_cgroups(self) -> None:
        """Our subtree in each hierarchy (under this process's own cgroup, where outer.sh made it), deepest first."""
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrl, path = line.split(":", 2)
            top = Path("/sys/fs/cgroup") / ("unified" if not ctrl else ctrl.replace("name=", ""))
            if not top.is_dir():
                top = Path("/sys/fs/cgroup")
            d = top / path.lstrip("/") / self.cgroup
            if not d.is_dir():
                continue
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [d]:
                for _ in range(50):
                    try:
                        sub.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)

    def __enter__(self) -> "SystemdContainer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def can_boot() -> tuple[bool, str]:
    """Whether this machine can run the container at all (root, unshare, nsenter, overlayfs)."""
    if os.geteuid() != 0:
        return False, "needs root (namespaces, overlayfs, dpkg)"
    for tool in ("unshare", "nsenter", "dpkg", "/lib/systemd/systemd"):
        if shutil.which(tool) is None and not Path(tool).exists():
            return False, f"{tool} is not installed"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return False, "the kernel has no overlayfs"
    return True, ""
