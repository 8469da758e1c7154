"""``bundle install`` and ``bundle rollback``: a new bundle reaches the daemon only after it proved itself.

install: stage beside the current version -> signature + every hash (``load_bundle`` under the
unit's trust policy) -> the bundle's check windows on this unit's runtime (ONNX Runtime against
the factory's logits; where TensorRT exists, the engine is built and checked against ONNX Runtime)
-> atomic slot switch -> daemon restart -> healthy within the timeout (READY sent, the new version
loaded, its first windows classified) or the switch is undone, the daemon restarted on the old
version, and the reason logged in the store's history and on stderr.

Restarting and judging the daemon is ``ServiceControl``: on a unit ``systemctl restart --no-block``
and ``systemctl show`` (``ActiveState=active`` on a ``Type=notify`` unit means READY=1 arrived;
a crash shows as ``NRestarts`` going up), plus the daemon's control socket for what systemd cannot
see (which bundle version it loaded and how many windows each classified).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge_ecg.bundle import Bundle, load_bundle
from edge_ecg.bundle_store import BundleStore, Transaction
from edge_ecg.errors import BundleError, EdgeEcgError

log = logging.getLogger(__name__)

__all__ = ["RuntimeCheck", "ServiceControl", "UpdateResult", "check_on_runtime", "install_bundle", "rollback_bundle", "recover_store"]

MIN_TOP_LABEL_AGREEMENT = 0.99  # as `engine verify`
MIN_DECISION_AGREEMENT = 0.95  # INT8 kernels differ between CPUs: measured 0.983-1.0 on the shipped bundles
MAX_ABS_LOGIT_DIFF = 1.0  # a broken graph or wrong weights moves logits by far more (measured <= 0.17)


class Interrupted(EdgeEcgError):
    """SIGTERM/SIGINT/SIGHUP arrived during an update (the switch is undone before exiting)."""


@dataclass(frozen=True)
class RuntimeCheck:
    backend: str
    precision: str
    against: str
    windows: int
    top_label_agreement: float
    decision_agreement: float
    max_abs_logit_diff: float
    engine: str | None = None

    def ok(self) -> bool:
        return (self.top_label_agreement >= MIN_TOP_LABEL_AGREEMENT and self.decision_agreement >= MIN_DECISION_AGREEMENT
                and self.max_abs_logit_diff <= MAX_ABS_LOGIT_DIFF)

    def line(self) -> str:
        return (f"{self.backend} {self.precision} vs {self.against} on {self.windows} check windows: top-label {self.top_label_agreement:.3f}, "
                f"decisions {self.decision_agreement:.3f}, max |logit diff| {self.max_abs_logit_diff:.3g}"
                + (f", engine {self.engine}" if self.engine else "") + (" -> ok" if self.ok() else " -> FAIL"))


def _compare(bundle: Bundle, ref: np.ndarray, got: np.ndarray) -> tuple[float, float, float]:
    from edge_ecg.inference import sigmoid

    thr = bundle.thresholds[None, :]
    return (float(np.mean(ref.argmax(1) == got.argmax(1))), float(np.mean((sigmoid(ref) >= thr) == (sigmoid(got) >= thr))),
            float(np.abs(ref - got).max()))


def check_on_runtime(bundle: Bundle, precision: str = "int8", backend: str = "auto", threads: int | None = None) -> list[RuntimeCheck]:
    """The bundle's check windows on this unit: ONNX Runtime against the factory's stored logits and,
    where TensorRT runs, a freshly built (or cached) engine against ONNX Runtime."""
    from edge_ecg.render import to_model_input
    from edge_ecg.runtimes import open_runtime, tensorrt_available

    if "check.npz" not in bundle.files:
        raise BundleError(bundle.root, "bundle has no check windows (check.npz): it cannot be checked on the unit")
    check = bundle.check_windows()
    x = to_model_input(check["images"])
    factory = check.get(f"logits_{precision}")
    if factory is None:
        raise BundleError(bundle.root / "check.npz", f"no factory logits for {precision}")
    with open_runtime(bundle, "onnxruntime", precision, threads=threads) as rt:
        ort = rt.run(x)
    out = [RuntimeCheck("onnxruntime", precision, "factory logits", len(x), *_compare(bundle, factory, ort))]
    trt_ok, why = tensorrt_available()
    if backend in ("auto", "tensorrt") and trt_ok:
        from edge_ecg.runtimes.tensorrt_runtime import build_engine_file

        plan = build_engine_file(bundle, precision)
        with open_runtime(bundle, "tensorrt", precision) as rt:
            got = rt.run(x)
        out.append(RuntimeCheck("tensorrt", precision, "onnxruntime", len(x), *_compare(bundle, ort, got), engine=plan.name))
    elif backend == "tensorrt":
        raise BundleError(bundle.root, f"config asks for TensorRT, which cannot run here: {why}")
    else:
        log.info("no TensorRT engine built for %s: %s", bundle.name, why)
    return out


@dataclass
class ServiceControl:
    """How to restart the daemon and how to tell it is healthy."""

    socket: Path
    restart_cmd: Sequence[str]
    unit: str | None = None  # the systemd unit to watch, when systemd runs the daemon
    poll_s: float = 0.5

    @classmethod
    def for_unit(cls, socket: Path, unit: str, restart_cmd: Sequence[str] | str | None = None) -> "ServiceControl":
        """systemd when it runs this machine, else ``restart_cmd`` (a test bench's own supervisor)."""
        if restart_cmd:
            cmd = shlex.split(restart_cmd) if isinstance(restart_cmd, str) else list(restart_cmd)
            return cls(socket, cmd, unit if os.path.isdir("/run/systemd/system") and "systemctl" in cmd[0] else None)
        if not os.path.isdir("/run/systemd/system"):
            raise EdgeEcgError("systemd is not running here: pass --restart-cmd (how to restart the daemon) or --no-restart")
        return cls(socket, ["systemctl", "restart", "--no-block", unit], unit)

    def status(self) -> dict[str, Any] | None:
        from edge_ecg.alarms.control import request

        try:
            reply = request(self.socket, {"cmd": "status"}, timeout_s=2.0)
        except Exception:
            return None
        return reply if reply.get("ok") else None

    def _unit(self) -> dict[str, str]:
        out = subprocess.run(["systemctl", "show", self.unit, "-p", "ActiveState", "-p", "SubState", "-p", "NRestarts", "-p", "Result", "-p", "ExecMainStatus"],
                             capture_output=True, text=True, timeout=10)
        return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def restart(self) -> tuple[int | None, int]:
        """Restart; returns the pid that answered before (so the new daemon can be told apart) and systemd's restart count."""
        before = self.status()
        restarts = int(self._unit().get("NRestarts", "0") or 0) if self.unit else 0
        out = subprocess.run(list(self.restart_cmd), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise EdgeEcgError(f"restart command {shlex.join(self.restart_cmd)} failed ({out.returncode}): {(out.stderr or out.stdout).strip()}")
        return ((before or {}).get("pipeline") or {}).get("pid"), restarts

    def wait_healthy(self, expect: dict[str, tuple[Path, str]], old_pid: int | None, restarts: int, timeout_s: float) -> tuple[bool, str]:
        """Healthy = READY sent and, for each ``expect`` name -> (version folder, role), that version loaded
        and (findings bundles) at least one window classified; ``(False, why)`` at the deadline or on a crash."""
        deadline = time.monotonic() + timeout_s
        why = "no answer yet"
        while time.monotonic() < deadline:
            if self.unit:
                u = self._unit()
                if u.get("ActiveState") == "failed":
                    return False, f"{self.unit} failed (Result={u.get('Result')}, exit status {u.get('ExecMainStatus')}); see journalctl -u {self.unit}"
                if int(u.get("NRestarts", "0") or 0) > restarts:
                    return False, f"the daemon exited and systemd restarted it (restarts {restarts} -> {u.get('NRestarts')}); see journalctl -u {self.unit}"
                if u.get("ActiveState") != "active":
                    why = f"{self.unit} is {u.get('ActiveState')}/{u.get('SubState')} (no READY=1 yet)"
                    time.sleep(self.poll_s)
                    continue
            st = self.status()
            pipe = (st or {}).get("pipeline") or {}
            if st is None:
                why = f"control socket {self.socket} does not answer"
            elif old_pid is not None and pipe.get("pid") == old_pid:
                why = "the old daemon is still answering"
            elif not pipe.get("ready"):
                why = "daemon has not sent READY=1"
            else:
                # READY means every bundle the daemon will run is loaded: one missing now is off for good
                # (model_unavailable: refused at load, or leads the cart does not send), so fail at once
                down = {u.get("bundle"): u.get("reason") for u in pipe.get("unavailable", [])}
                loaded = {b.get("name") for b in pipe.get("bundles", [])}
                bad = [n for n in expect if n in down or n not in loaded]
                if bad:
                    alarms = [a for a in st.get("alarms", []) if a.get("alarm") == "model_unavailable"]
                    detail = down.get(bad[0]) or "; ".join(str((a.get("evidence") or {}).get("reason", "")) for a in alarms) or "not loaded"
                    return False, f"the daemon runs without bundle {bad[0]} (model_unavailable: {detail})"
                why = self._bundles_ok(st, pipe, expect)
                if why is None:
                    loaded = ", ".join(f"{b['name']} {b['version']} ({b['windows']} windows)" for b in pipe.get("bundles", []))
                    return True, f"READY, pid {pipe.get('pid')}, {loaded}"
            time.sleep(self.poll_s)
        return False, f"not healthy within {timeout_s:g} s: {why}"

    @staticmethod
    def _bundles_ok(st: dict, pipe: dict, expect: dict[str, tuple[Path, str]]) -> str | None:
        loaded = {b.get("name"): b for b in pipe.get("bundles", [])}
        for name, (path, role) in expect.items():
            b = loaded.get(name)
            if b is None:
                bad = [a for a in st.get("alarms", []) if a.get("alarm") in ("model_unavailable", "inference_failure")]
                return f"bundle {name} is not running in the daemon" + (f" (alarms: {', '.join(a['alarm'] for a in bad)})" if bad else "")
            if Path(b.get("root", "")).resolve() != path.resolve():
                return f"bundle {name} runs {b.get('root')}, not {path}"
            if role == "findings" and int(b.get("windows", 0)) < 1:
                return f"bundle {name} {b.get('version')} has classified no window yet"
        for a in st.get("alarms", []):
            if a.get("alarm") == "inference_failure" and a.get("active"):
                return "inference_failure is active"
        return None


@dataclass
class UpdateResult:
    name: str
    version: str
    path: Path
    status: str  # active | already active | rolled back | switched (no restart) | skipped (not newer)
    reason: str = ""
    signer: str = ""
    checks: list[RuntimeCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "rolled back"


def _version_key(v: str) -> tuple:
    parts = []
    for p in v.replace("-", ".").split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


class _Signals:
    """SIGTERM/SIGINT/SIGHUP raise ``Interrupted`` while an update runs, so the switch can be undone."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __enter__(self):
        self.old = {}
        for s in self.SIGNALS:
            try:
                self.old[s] = signal.signal(s, self._raise)
            except ValueError:  # not the main thread (library use): nothing to install
                pass
        return self

    @staticmethod
    def _raise(signum, frame):
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}")

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


def _switch_and_confirm(store: BundleStore, tx: Transaction, service: ServiceControl | None, expect: dict, timeout_s: float,
                        progress: Callable[[str], None]) -> tuple[bool, str]:
    """Restart on the switched slot; confirm if healthy, else undo and restart on the old one."""
    if service is None:
        store.confirm(tx, note="switched without a daemon restart")
        return True, "switched; daemon not restarted (--no-restart)"
    try:
        old_pid, restarts = service.restart()
        progress(f"restarted the daemon; waiting up to {timeout_s:g} s for READY and the first windows")
        ok, why = service.wait_healthy(expect, old_pid, restarts, timeout_s)
    except (Interrupted, KeyboardInterrupt) as exc:
        ok, why = False, str(exc) or "interrupted"
    except Exception as exc:
        ok, why = False, f"{type(exc).__name__}: {exc}"
    if ok:
        store.confirm(tx, health=why)
        return True, why
    log.error("bundle %s: %s; switching back", tx.name, why)
    store.revert(tx, why)
    progress(f"NOT healthy: {why}; switched {tx.name} back to {tx.from_active or 'nothing'}")
    try:
        old_pid, restarts = service.restart()
        back = {k: (store.root / tx.from_active, role) for k, (_, role) in expect.items()} if tx.from_active else {}
        ok2, why2 = service.wait_healthy(back, old_pid, restarts, timeout_s)
        progress(f"previous bundle {'healthy' if ok2 else 'NOT healthy'} after the rollback: {why2}")
        store.record("health", name=tx.name, after="rollback", healthy=ok2, detail=why2)
    except Exception as exc:
        progress(f"restart after the rollback failed: {exc}")
        store.record("health", name=tx.name, after="rollback", healthy=False, detail=str(exc))
    return False, why


@contextlib.contextmanager
def _undo_on_error(store: BundleStore, tx: Transaction):
    """Anything escaping between a switch and its confirmation puts the old links back first."""
    try:
        yield
    except BaseException as exc:
        if store.pending() is not None:
            store.revert(tx, f"update aborted: {type(exc).__name__}: {exc}")
        raise


def install_bundle(source: Path, store: BundleStore, trust: Any, *, service: ServiceControl | None,
                   roles: dict[str, tuple[str, str, str]] | None = None, health_timeout_s: float = 120.0,
                   if_newer: bool = False, progress: Callable[[str], None] = lambda s: None) -> UpdateResult:
    """Stage, verify, check, switch, restart, confirm or roll back. ``roles``: bundle name -> (role,
    precision, backend) from the daemon config (names it does not use are installed, not health-checked)."""
    roles = roles or {}
    with _Signals(), store.lock():
        tx0 = store.recover()
        if tx0 is not None:
            progress(f"recovered an unconfirmed {tx0.op} of {tx0.name} (reverted to {tx0.from_active})")
        staged = store.stage(source)
        progress(f"staged {source} in {staged.parent}")
        bundle = load_bundle(staged, trust=trust)  # signature first, then every sha256: refused here = nothing changed
        signer = bundle.signature.describe() if bundle.signature is not None else "signature not checked"
        progress(f"verified {bundle.name} {bundle.version}: {signer}, {len(bundle.files)} files match their sha256")
        active = store.state(bundle.name).active
        if if_newer and active is not None and active.version != "missing" and _version_key(active.version) >= _version_key(bundle.version):
            store.clean_staging()
            return UpdateResult(bundle.name, bundle.version, active.path, "skipped (not newer)", f"active is {active.version}", signer)
        role, precision, backend = roles.get(bundle.name, ("", "int8", "auto"))
        checks = check_on_runtime(bundle, precision=precision, backend=backend)
        for c in checks:
            progress(f"checked: {c.line()}")
        bad = [c for c in checks if not c.ok()]
        if bad:
            store.clean_staging()
            raise BundleError(staged.name, f"{bundle.name} {bundle.version} fails its check windows on this unit: {bad[0].line()}")
        path = store.adopt(staged)
        if active is not None and active.path.resolve() == path.resolve():
            store.clean_staging()
            return UpdateResult(bundle.name, bundle.version, path, "already active", "", signer, checks)
        tx = store.switch(bundle.name, path)
        with _undo_on_error(store, tx):
            progress(f"switched {bundle.name}: {active.label if active else 'none'} -> {bundle.version} ({path.name})")
            if not role and service is not None:
                progress(f"the daemon config does not use a bundle named {bundle.name}: nothing to restart")
            ok, why = _switch_and_confirm(store, tx, service if role else None, {bundle.name: (path, role)} if role else {}, health_timeout_s, progress)
        store.prune(bundle.name)
        return UpdateResult(bundle.name, bundle.version, path, "active" if ok else "rolled back", why, signer, checks)


def rollback_bundle(name: str | None, store: BundleStore, *, service: ServiceControl | None, roles: dict[str, tuple[str, str, str]] | None = None,
                    health_timeout_s: float = 120.0, trust: Any = None, progress: Callable[[str], None] = lambda s: None) -> UpdateResult:
    """Make the previous version active again (verified under ``trust`` first), with the same health check."""
    roles = roles or {}
    with _Signals(), store.lock():
        store.recover()
        if name is None:
            candidates = [n for n in store.names() if store.state(n).previous is not None]
            if len(candidates) != 1:
                raise BundleError(store.root, f"name the bundle to roll back (with a previous version: {', '.join(candidates) or 'none'})")
            name = candidates[0]
        st = store.state(name)
        if st.previous is None:
            raise BundleError(store.previous_link(name), f"{name} has no previous version to roll back to")
        bundle = load_bundle(st.previous.path, trust=trust)
        tx = store.switch(name, st.previous.path, op="rollback")
        with _undo_on_error(store, tx):
            progress(f"switched {name}: {st.active.label if st.active else 'none'} -> {st.previous.label}")
            role = roles.get(name, ("",))[0]
            ok, why = _switch_and_confirm(store, tx, service if role else None, {name: (st.previous.path, role)} if role else {}, health_timeout_s, progress)
        signer = bundle.signature.describe() if bundle.signature is not None else ""
        return UpdateResult(name, bundle.version, st.previous.path, "active" if ok else "rolled back", why, signer)


def recover_store(store: BundleStore) -> Transaction | None:
    """Undo an unconfirmed switch; skipped (None) while another install holds the store (it is restarting us)."""
    from edge_ecg.bundle_store import StoreBusy

    try:
        with store.lock():
            return store.recover()
    except StoreBusy:
        return None
