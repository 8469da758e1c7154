"""``edge-ecg doctor``: the self-test a technician runs on a unit, each finding with its fix.

Every check returns a ``Finding``: ``pass``, ``warn`` (works, but look), ``fail`` (the unit is not
fit for the bedside: the exit status is non-zero) or ``skip`` (does not apply here, with why).
Checks only read: the doctor never changes a unit; the fix says what to run. ``--json`` prints
the same findings for fleet tooling.

The cart port check opens the port itself when the daemon is not running; when the daemon holds
it (exclusive lock), it asks the daemon over the control socket instead (HELLO, rate, leads off).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge_ecg.paths import InstallPaths, install_paths

__all__ = ["Finding", "DoctorContext", "run_doctor", "format_findings", "CHECKS"]

STATUSES = ("pass", "warn", "fail", "skip")
MIN_FREE_FAIL = 200 << 20  # below this the event log and a bundle update can fail
MIN_FREE_WARN = 1 << 30
FS_RANGE = (100.0, 2000.0)  # Hz: the DSP's filters and the renderer are built for diagnostic ECG rates
RUNTIME_MODULES = {"numpy": "numpy", "scipy": "scipy", "pyserial": "serial", "onnxruntime": "onnxruntime", "wfdb": "wfdb",
                   "pillow": "PIL", "edfio": "edfio", "cryptography": "cryptography", "ecgdatakit": "ecgdatakit", "pydicom": "pydicom"}


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class DoctorContext:
    config_path: Path
    paths: InstallPaths
    port_timeout_s: float = 5.0
    cfg: Any = None  # the loaded DaemonConfig (None when it does not load)
    daemon_status: dict | None = None  # the running daemon's control-socket status, if it answers

    @property
    def is_release(self) -> bool:
        from edge_ecg.buildinfo import build_info

        return build_info(self.paths).source == "release"


def _ok(check: str, detail: str, **data) -> Finding:
    return Finding(check, "pass", detail, data=data)


# --- software -----------------------------------------------------------------------------------

def check_python(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.buildinfo import build_info

    info = build_info(ctx.paths)
    v = sys.version_info
    tag = f"cp{v.major}{v.minor}"
    if v < (3, 10):
        return [Finding("python", "fail", f"Python {platform.python_version()} is older than 3.10", "install the package on JetPack 6 / Ubuntu 22.04 or newer")]
    shipped = info.extra.get("python_tags") or []
    if info.source == "release" and shipped and tag not in shipped:
        return [Finding("python", "fail", f"Python {platform.python_version()} ({tag}) but the package's wheelhouse is for {', '.join(shipped)}",
                        "install the .deb built for this OS release (make release builds one wheelhouse per supported Python)")]
    return [_ok("python", f"Python {platform.python_version()} ({platform.machine()}); {info.line()}", build_id=info.build_id, version=info.version)]


def _lock_versions(ctx: DoctorContext) -> dict[str, str]:
    v = sys.version_info
    lock = ctx.paths.wheelhouse / f"requirements-cp{v.major}{v.minor}.txt"
    out: dict[str, str] = {}
    if lock.is_file():
        for line in lock.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", line.strip())
            if m:
                out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def check_packages(ctx: DoctorContext) -> list[Finding]:
    import importlib

    problems, versions = [], {}
    for dist, module in RUNTIME_MODULES.items():
        try:
            versions[dist] = md.version(dist)
            importlib.import_module(module)
        except md.PackageNotFoundError:
            problems.append(f"{dist} is not installed")
        except Exception as exc:
            problems.append(f"{dist} {versions.get(dist, '')} does not import ({type(exc).__name__}: {exc})")
    pinned = _lock_versions(ctx)
    for name, want in pinned.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            problems.append(f"{name} {want} from the wheelhouse is missing")
            continue
        if have != want and name != "edge-ecg":
            problems.append(f"{name} is {have}, the release pins {want}")
    fix = "reinstall the release: dpkg -i edge-ecg_<version>_<arch>.deb (offline; it rebuilds the venv from its wheelhouse)"
    if problems:
        return [Finding("packages", "fail", "; ".join(problems), fix, data={"versions": versions})]
    src = f"{len(pinned)} pinned by the release's hash lock" if pinned else "no release lock here (source checkout)"
    return [_ok("packages", f"edge-ecg {md.version('edge-ecg') if _has('edge-ecg') else '?'}; runtime packages import ({src}); "
                + ", ".join(f"{k} {v}" for k, v in versions.items()), versions=versions)]


def _has(dist: str) -> bool:
    try:
        md.version(dist)
        return True
    except md.PackageNotFoundError:
        return False


def check_config(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.service.config import load_config

    if not ctx.config_path.is_file():
        return [Finding("config", "fail", f"{ctx.config_path} does not exist", f"reinstall the package, or pass --config FILE (see {ctx.paths.prefix}/share)")]
    try:
        ctx.cfg = load_config(ctx.config_path)
    except Exception as exc:
        return [Finding("config", "fail", str(exc), f"edit {ctx.config_path}, then `edge-ecg run --config {ctx.config_path} --check`")]
    cfg = ctx.cfg
    return [_ok("config", f"{ctx.config_path}: source {cfg.source}, {len(cfg.bundles)} bundle(s), state {cfg.sinks.state_dir}")]


def check_trust(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.signing import load_trusted_keys, private_keys_in

    if ctx.cfg is None:
        return [Finding("trust", "skip", "config did not load")]
    policy = ctx.cfg.trust
    private = private_keys_in(policy.keys_dir)
    if private:
        return [Finding("trust", "fail", f"private key(s) on the unit: {', '.join(map(str, private))}",
                        "delete them from the unit (they belong on the factory's signing machine) and rotate that key")]
    try:
        keys = load_trusted_keys(policy.keys_dir)
    except Exception as exc:
        return [Finding("trust", "fail", str(exc), f"remove or replace the file in {policy.keys_dir}")]
    names = ", ".join(f"{k.name} ({k.key_id})" for k in keys.values())
    if policy.required and not keys:
        return [Finding("trust", "fail", f"signatures are required but {policy.keys_dir} holds no *.pub key",
                        f"copy the factory's public key to {policy.keys_dir}/")]
    dev = [k.name for k in keys.values() if k.name.startswith("development")]
    if not policy.required:
        status = "warn" if ctx.is_release else "pass"
        return [Finding("trust", status, f"signatures not required ([trust] require_signature = false); trusted: {names or 'none'}",
                        f"set [trust] require_signature = true in {ctx.config_path}" if status == "warn" else "")]
    if dev:
        return [Finding("trust", "warn", f"a development key is trusted: {', '.join(dev)} (built without the factory key)",
                        "install a release built with `make release SIGNING_KEY=<factory key>`")]
    return [_ok("trust", f"signatures required; trusted: {names}")]


def check_bundles(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.bundle import load_bundle
    from edge_ecg.bundle_store import BundleStore

    if ctx.cfg is None:
        return [Finding("bundles", "skip", "config did not load")]
    out = []
    store = BundleStore(ctx.paths.bundle_store)
    try:
        tx = store.pending()
    except Exception as exc:
        tx, out = None, [Finding("bundle store", "fail", str(exc), "inspect `edge-ecg bundle list`")]
    if tx is not None:
        out.append(Finding("bundle store", "fail", f"switch of {tx.name} to {tx.to} not confirmed healthy (started {tx.started})",
                           "edge-ecg bundle recover (restores the previous bundle), then retry the install"))
    for b in ctx.cfg.bundles:
        name = f"bundle {b.path.name}"
        t0 = time.monotonic()
        try:
            bundle = load_bundle(b.path, trust=ctx.cfg.trust)
        except Exception as exc:
            out.append(Finding(name, "fail", str(exc), f"edge-ecg bundle rollback {b.path.name}, or edge-ecg bundle install <signed bundle>"))
            continue
        sig = bundle.signature.describe() if bundle.signature is not None else "signature not checked"
        out.append(_ok(name, f"{bundle.name} {bundle.version} ({b.role}): {sig}; {len(bundle.files)} files match their sha256 "
                             f"({time.monotonic() - t0:.1f} s)", version=bundle.version, signer=getattr(bundle.signature, "signer", None)))
    return out


def _on_jetson() -> bool:
    return Path("/etc/nv_tegra_release").is_file()


def check_tensorrt(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.runtimes import tensorrt_available

    ok, why = tensorrt_available()
    if ok:
        import tensorrt

        return [_ok("tensorrt", f"TensorRT {tensorrt.__version__} and a CUDA device", version=tensorrt.__version__)]
    if _on_jetson():
        return [Finding("tensorrt", "fail", f"Jetson without a usable TensorRT: {why}",
                        "install JetPack's TensorRT Python bindings (apt install python3-libnvinfer) and pycuda; the venv sees system site packages")]
    return [Finding("tensorrt", "skip", f"no TensorRT here ({why}); ONNX Runtime classifies on the CPU")]


def check_engines(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.runtimes import tensorrt_available

    if ctx.cfg is None:
        return [Finding("engine cache", "skip", "config did not load")]
    ok, why = tensorrt_available()
    if not ok:
        return [Finding("engine cache", "skip", f"no TensorRT ({why})")]
    from edge_ecg.bundle import load_bundle
    from edge_ecg.runtimes.tensorrt_runtime import engine_key

    out = []
    for b in ctx.cfg.bundles:
        if b.backend == "onnxruntime":
            continue
        try:
            bundle = load_bundle(b.path, verify=False)
            key = engine_key(b.precision, 8)
            plan = bundle.engine_dir / key.filename
            meta = json.loads(plan.with_suffix(".json").read_text()) if plan.with_suffix(".json").is_file() else {}
        except Exception as exc:
            out.append(Finding(f"engine {b.path.name}", "fail", str(exc), f"sudo edge-ecg engine build {b.path}"))
            continue
        if not plan.is_file():
            out.append(Finding(f"engine {b.path.name}", "fail", f"no engine {plan.name}: the daemon would build it at start (minutes) and cannot write there",
                               f"sudo edge-ecg engine build {b.path} --precision {b.precision}"))
        elif meta.get("onnx_sha256") != bundle.files.get(bundle.onnx_path(b.precision).name):
            out.append(Finding(f"engine {b.path.name}", "fail", f"{plan.name} was built from another ONNX", f"sudo edge-ecg engine build {b.path} --force"))
        else:
            out.append(_ok(f"engine {b.path.name}", f"{plan.name} (TensorRT {meta.get('tensorrt')}, built in {meta.get('build_s')} s)"))
    return out


# --- the cart ------------------------------------------------------------------------------------

def _daemon_status(ctx: DoctorContext) -> dict | None:
    if ctx.cfg is None:
        return None
    from edge_ecg.alarms.control import request

    try:
        reply = request(ctx.cfg.sinks.socket_path, {"cmd": "status"}, timeout_s=2.0)
    except Exception:
        return None
    return reply if reply.get("ok") else None


def _port_from_daemon(st: dict) -> list[Finding]:
    pipe = st.get("pipeline") or {}
    hello = pipe.get("hello")
    if not hello:
        return [Finding("cart port", "fail", f"the daemon runs but has no HELLO from the cart (source {pipe.get('source_state')})",
                        "check the cable and the cart's power; `journalctl -u edge-ecg` shows the reconnect attempts")]
    detail = f"HELLO (via the running daemon): device {hello['device_id']:#x}, firmware {hello['firmware']}, {len(hello['leads'])} leads ({', '.join(hello['leads'])}) at {hello['fs']:g} Hz, stream {pipe.get('source_state')}"
    leads_off = [a for a in st.get("alarms", []) if a.get("alarm") == "leads_off" and a.get("active")]
    return _port_findings(detail, float(hello["fs"]), bool(leads_off), hello)


def _port_findings(detail: str, fs: float, lead_off: bool, data: dict, off_leads: list[str] | None = None) -> list[Finding]:
    out = [_ok("cart port", detail, **data)]
    if not FS_RANGE[0] <= fs <= FS_RANGE[1]:
        out.append(Finding("cart sample rate", "fail", f"{fs:g} Hz is outside {FS_RANGE[0]:g}-{FS_RANGE[1]:g} Hz", "configure the cart for a diagnostic ECG rate (e.g. 250, 360 or 500 Hz)"))
    else:
        out.append(_ok("cart sample rate", f"{fs:g} Hz"))
    if lead_off:
        out.append(Finding("cart lead-off", "warn", "electrodes reported off" + (f": {', '.join(off_leads)}" if off_leads else ""),
                           "attach the electrodes (the check needs a patient or a simulator connected)"))
    else:
        out.append(_ok("cart lead-off", "all electrodes on"))
    return out


def check_cart(ctx: DoctorContext) -> list[Finding]:
    if ctx.cfg is None:
        return [Finding("cart port", "skip", "config did not load")]
    uri = ctx.cfg.source
    if not uri.startswith("serial:"):
        return [Finding("cart port", "skip", f"source is {uri} (not a cart)")]
    if ctx.daemon_status is not None:
        return _port_from_daemon(ctx.daemon_status)
    port = uri[len("serial:"):]
    if not os.path.exists(port):
        return [Finding("cart port", "fail", f"{port} does not exist", "plug the cart in; `udevadm info -a -n /dev/ttyACM0` shows the IDs the udev rule "
                        "(/lib/udev/rules.d/99-edge-ecg-cart.rules, override in /etc/udev/rules.d) must match")]
    return _probe_port(port, ctx.port_timeout_s)


def _probe_port(port: str, timeout_s: float) -> list[Finding]:
    import numpy as np

    from edge_ecg.stream.serial_source import SerialSource

    src = SerialSource(port, handshake_s=min(1.0, timeout_s))
    try:
        end = time.monotonic() + timeout_s
        blocks = []
        while time.monotonic() < end and len(blocks) < 5:
            b = src.read(timeout=0.2)
            if b is not None:
                blocks.append(b)
        hello = src.hello
        err = src.stats.last_error
    finally:
        src.close()
    if hello is None:
        return [Finding("cart port", "fail", f"no HELLO from {port} within {timeout_s:g} s" + (f" ({err})" if err else ""),
                        "check the cart's power and cable; is another program holding the port (`fuser " + port + "`)?")]
    if not blocks:
        return [Finding("cart port", "fail", f"HELLO from {port} but no samples within {timeout_s:g} s", "power-cycle the cart; check its STATUS errors in the daemon log")]
    off = np.zeros(len(hello.leads), dtype=bool)
    for b in blocks:
        if b.lead_off is not None:
            off |= b.lead_off_any()
    data = {"device_id": hello.device_id, "firmware": ".".join(map(str, hello.firmware)), "fs": hello.fs, "leads": list(hello.leads)}
    detail = (f"HELLO from {port}: device {hello.device_id:#x}, firmware {data['firmware']}, {len(hello.leads)} leads "
              f"({', '.join(hello.leads)}) at {hello.fs:g} Hz; {sum(b.n for b in blocks)} samples received")
    return _port_findings(detail, float(hello.fs), bool(off.any()), data, [l for l, o in zip(hello.leads, off) if o])


# --- the machine -----------------------------------------------------------------------------------

def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(ctx: DoctorContext) -> list[Finding]:
    state = ctx.cfg.sinks.state_dir if ctx.cfg is not None else ctx.paths.state_dir
    out = []
    for label, path in (("state dir", state), ("bundle store", ctx.paths.bundle_store)):
        where = _existing(Path(path))
        free = shutil.disk_usage(where).free
        detail = f"{path}: {free / 2**30:.1f} GiB free"
        if free < MIN_FREE_FAIL:
            out.append(Finding(f"disk {label}", "fail", detail, f"free space on {where} (old evidence PNGs: {state}/evidence; old bundle versions are pruned on install)"))
        elif free < MIN_FREE_WARN:
            out.append(Finding(f"disk {label}", "warn", detail, "free space before the next update"))
        else:
            out.append(_ok(f"disk {label}", detail, free_bytes=free))
    return out


def _last_event_wall(ctx: DoctorContext) -> dt.datetime | None:
    if ctx.cfg is None:
        return None
    path = ctx.cfg.sinks.event_log
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            wall = json.loads(line).get("wall")
            if wall:
                return dt.datetime.fromisoformat(wall)
        except (ValueError, AttributeError):
            continue
    return None


def check_clock(ctx: DoctorContext) -> list[Finding]:
    from edge_ecg.buildinfo import build_info

    now = dt.datetime.now(dt.timezone.utc)
    info = build_info(ctx.paths)
    built = None
    if info.built_at:
        try:
            built = dt.datetime.fromisoformat(info.built_at)
        except ValueError:
            built = None
    if built is None:
        built = dt.datetime.fromtimestamp(Path(__file__).stat().st_mtime, dt.timezone.utc)
    fix = "set the clock (timedatectl set-time 'YYYY-MM-DD HH:MM:SS'; hwclock --systohc keeps it in the RTC): alarm times in the event log depend on it"
    if now < built - dt.timedelta(days=1):
        return [Finding("clock", "fail", f"the clock says {now:%Y-%m-%d %H:%M} UTC, before this software was built ({built:%Y-%m-%d})", fix)]
    if now > built + dt.timedelta(days=3650):
        return [Finding("clock", "warn", f"the clock says {now:%Y-%m-%d}, more than 10 years after the build ({built:%Y-%m-%d})", fix)]
    last = _last_event_wall(ctx)
    if last is not None and last.tzinfo is not None and last > now + dt.timedelta(minutes=5):
        return [Finding("clock", "warn", f"the last logged event ({last.isoformat()}) is later than now: the clock went back", fix)]
    sync = ""
    if shutil.which("timedatectl") and os.path.isdir("/run/systemd/system"):
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=5)
        sync = {"yes": "; NTP synchronized", "no": "; not NTP synchronized (expected offline: the RTC keeps time)"}.get(out.stdout.strip(), "")
    return [_ok("clock", f"{now:%Y-%m-%d %H:%M:%S} UTC, after the build ({built:%Y-%m-%d}){sync}")]


def _unit_files(unit: str) -> list[Path]:
    return [p for p in (Path("/etc/systemd/system") / unit, Path("/lib/systemd/system") / unit, Path("/usr/lib/systemd/system") / unit) if p.is_file()]


def check_systemd(ctx: DoctorContext) -> list[Finding]:
    unit = ctx.paths.unit
    files = _unit_files(unit)
    if not files:
        if ctx.is_release:
            return [Finding("systemd unit", "fail", f"{unit} is not installed", "reinstall the package")]
        return [Finding("systemd unit", "skip", f"{unit} is not installed (source checkout)")]
    if not os.path.isdir("/run/systemd/system"):
        wants = Path("/etc/systemd/system/multi-user.target.wants") / unit
        if not wants.exists():
            return [Finding("systemd unit", "fail", f"{files[0]} installed but not enabled", f"systemctl enable {unit}")]
        return [Finding("systemd unit", "skip", f"{files[0]} installed and enabled; systemd is not running here (container or chroot)")]
    def show(prop: str) -> str:
        return subprocess.run(["systemctl", "show", unit, "-p", prop, "--value"], capture_output=True, text=True, timeout=10).stdout.strip()
    enabled = subprocess.run(["systemctl", "is-enabled", unit], capture_output=True, text=True, timeout=10).stdout.strip()
    active, sub, restarts = show("ActiveState"), show("SubState"), show("NRestarts")
    detail = f"{unit}: {enabled}, {active}/{sub}, restarts {restarts or 0}; status: {show('StatusText') or '-'}"
    if enabled != "enabled":
        return [Finding("systemd unit", "fail", detail, f"systemctl enable --now {unit}")]
    if active != "active":
        return [Finding("systemd unit", "fail", detail, f"journalctl -u {unit} -b says why; then systemctl restart {unit}")]
    return [_ok("systemd unit", detail, restarts=int(restarts or 0))]


def check_display(ctx: DoctorContext) -> list[Finding]:
    """A connected DRM display when the config's ``[display]`` is enabled (the kiosk page shows on it)."""
    display = getattr(ctx.cfg, "display", None)
    if display is None or not getattr(display, "enabled", False):
        return [Finding("display", "skip", "no [display] enabled in the config")]
    drm = Path("/sys/class/drm")
    connectors = sorted(drm.glob("card*-*")) if drm.is_dir() else []
    connected = [c.name for c in connectors if (c / "status").is_file() and (c / "status").read_text().strip() == "connected"]
    if connected:
        return [_ok("display", f"connected: {', '.join(connected)}")]
    return [Finding("display", "fail", f"[display] is enabled but no display is connected ({len(connectors)} DRM connector(s))",
                    "connect the bedside display (HDMI/DP/DSI) and check `cat /sys/class/drm/card*-*/status`; "
                    "a bench without one sets [display] enabled = false")]


def check_sound(ctx: DoctorContext) -> list[Finding]:
    """An ALSA playback device and aplay when the config's ``[audio]`` is enabled (the alarm bursts)."""
    audio = getattr(ctx.cfg, "audio", None)
    if audio is None or not getattr(audio, "enabled", False):
        return [Finding("sound", "warn" if ctx.is_release else "skip", "no [audio] enabled in the config: alarms are not audible from this unit",
                        "enable [audio] with the speaker's ALSA device")]
    from edge_ecg.sound.player import AplayPlayer

    missing = AplayPlayer(audio.device).available()
    cards = Path("/proc/asound/cards")
    text = cards.read_text().strip() if cards.is_file() else ""
    playback = sorted(p.name for p in Path("/dev/snd").glob("pcmC*D*p")) if Path("/dev/snd").is_dir() else []
    if missing is None and text and "no soundcards" not in text and playback:
        return [_ok("sound", f"device {audio.device}: {text.splitlines()[0].strip()}; playback {', '.join(playback)}")]
    why = missing or "no sound card with a playback device"
    return [Finding("sound", "fail", f"[audio] device {audio.device}: {why}: alarms are not audible from this unit",
                    "connect the speaker / enable the audio codec (`aplay -l` lists playback devices); a bench without one sets [audio] enabled = false")]


CHECKS: tuple[Callable[[DoctorContext], list[Finding]], ...] = (
    check_python, check_packages, check_config, check_trust, check_bundles, check_tensorrt, check_engines,
    check_cart, check_disk, check_clock, check_systemd, check_display, check_sound,
)


def run_doctor(config: Path | None = None, paths: InstallPaths | None = None, port_timeout_s: float = 5.0,
               checks: tuple[Callable[[DoctorContext], list[Finding]], ...] = CHECKS) -> list[Finding]:
    """Every check in order (the config first: later checks read it); a check that crashes is a failure, not a crash."""
    paths = paths or install_paths()
    ctx = DoctorContext(config or paths.config, paths, port_timeout_s)
    out: list[Finding] = []
    for check in checks:
        if check is check_cart:
            ctx.daemon_status = _daemon_status(ctx)
        try:
            out.extend(check(ctx))
        except Exception as exc:
            out.append(Finding(check.__name__.replace("check_", ""), "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                               "report this with `edge-ecg doctor --json`"))
    return out


def format_findings(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"[{f.status.upper():4}] {f.check:<18} {f.detail}")
        if f.fix and f.status in ("fail", "warn"):
            lines.append(f"{'':7}{'':<18} fix: {f.fix}")
    counts = {s: sum(f.status == s for f in findings) for s in STATUSES}
    lines.append(f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed, {counts['skip']} skipped"
                 + (" -> NOT fit for the bedside" if counts["fail"] else ""))
    return "\n".join(lines)


def findings_json(findings: list[Finding]) -> str:
    return json.dumps({"ok": not any(f.status == "fail" for f in findings), "findings": [asdict(f) for f in findings]}, indent=2)
