"""Shared helpers for the daemon/pipeline/demo tests (no tests here).

``model_bundle`` gives a real bundle: the committed ``bundles/rhythm`` when it exists, otherwise a
tiny HeartBEiT with random weights exported to ONNX through the factory's export path, built
once per session. Random weights make its findings meaningless, so tests using it assert only
pipeline behaviour (windows per hop, coalescing, evidence), never clinical findings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_CACHE: dict[str, Path] = {}


def _test_operating_points():
    """Declared, not measured: the random-weight test bundle's ``vrun`` claims validated operating
    points at 0.5 and 0.0 so pipeline tests can exercise a label that is allowed to alarm (the
    alarm gate itself is tested in tests/test_model_alarm_gate.py)."""
    from edge_ecg.bundle import OperatingPoint

    ok = {"value": 0.99, "low": 0.97, "high": 1.0}
    return tuple(OperatingPoint(n, t, "test double", ok, ok) for n, t in (("default", 0.5), ("always", 0.0)))


def tiny_bundle(tmp_root: Path, leads=("II", "V1")) -> Path:
    """A tiny random-weight bundle for a strips layout over ``leads`` (built once per session)."""
    key = ",".join(leads)
    if key in _CACHE and _CACHE[key].exists():
        return _CACHE[key]
    torch = pytest.importorskip("torch")
    try:
        from export.bundle_writer import write_bundle
        from export.models.heartbeit import create_model
        from export.onnx_export import export_onnx
    except ImportError as exc:
        pytest.skip(f"factory export path not importable: {exc}")
    from edge_ecg.bundle import Label
    from edge_ecg.render import RenderSpec

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=2).eval()
    out = tmp_root / f"bundle-{len(_CACHE)}"
    out.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, out / "model.onnx")
    spec = RenderSpec(layout="strips", leads=tuple(leads))
    labels = [Label("vrun", 0.5, "high", alarm_capable=True, operating_points=_test_operating_points()),
              Label("artifact", 0.5, "none")]
    write_bundle(out / "test-rhythm", name="test-rhythm", spec=spec, labels=labels, fp32_onnx=fp32, int8_onnx=fp32, window_s=10.0, hop_s=2.0, overwrite=True,
                 provenance={"note": "random weights, tests only"})
    _CACHE[key] = out / "test-rhythm"
    return _CACHE[key]


def write_config(path: Path, source: str, state: Path, bundles=(), extra: str = "") -> Path:
    lines = [f'source = "{source}"']
    for b in bundles:
        lines += ["[[bundle]]", f'path = "{b["path"]}"'] + [f"{k} = {v}" for k, v in b.items() if k != "path"]
    lines += ["[sinks]", f'state_dir = "{state}"', f'control_socket = "{state}/c.sock"', extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


# --- end-to-end helpers: a real cart simulator process on a pty, the daemon in-process ---------

import subprocess as _sp
import threading as _th
import time as _time


_LIGHT_CART = """
import logging, sys
import numpy as np
from edge_ecg.records.record import Record
from firmware_bridge.cart_sim import CartSimulator, parse_faults
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
z = np.load(sys.argv[1])
rec = Record(signals=z["signals"], fs=float(z["fs"]), leads=tuple(str(x) for x in z["leads"]), name="excerpt")
def on_event(kind, detail):
    if kind == "pty":
        print(detail, flush=True)
    else:
        logging.getLogger("cart-sim").info("cart-sim %s %s", kind, detail)
sys.exit(CartSimulator(rec, speed=float(sys.argv[2]), faults=parse_faults(sys.argv[3]), ring_s=float(sys.argv[4]), link=sys.argv[5], on_event=on_event).run())
"""


class Cart:
    """A simulated cart as a real subprocess on a pty; its stderr lines are kept with their arrival time.

    ``Cart(wfdb_path, ...)`` runs the real ``edge-ecg cart-sim`` command; ``Cart.of(record, ...)``
    runs the same ``CartSimulator`` on an in-memory excerpt handed over as ``.npz``, skipping the
    seconds the WFDB reader's imports take on a loaded CI machine.
    """

    @classmethod
    def of(cls, record, folder: Path, speed: float, faults: str = "", ring_s: float = 2.0) -> "Cart":
        import numpy as np

        folder.mkdir(parents=True, exist_ok=True)
        npz = folder / f"cart-{id(record)}.npz"
        np.savez(npz, signals=record.signals, fs=record.fs, leads=np.array(record.leads))
        return cls(None, speed, faults, _args=[sys.executable, "-c", _LIGHT_CART, str(npz), str(speed), faults, str(ring_s), str(folder / f"cart-{id(record)}.tty")])

    def __init__(self, record: Path | None, speed: float, faults: str = "", ring_s: float = 2.0, _args: list | None = None) -> None:
        # --link: a stable name like udev's /dev/serial/by-id (a replug gets a new /dev/pts/N)
        args = _args or [sys.executable, "-m", "edge_ecg", "cart-sim", str(record), "--speed", str(speed), "--ring-s", str(ring_s),
                         "--link", str(Path(record).with_suffix(".tty"))]
        if faults and not _args:
            args += ["--faults", faults]
        self.proc = _sp.Popen(args, cwd=REPO, env=cli_env(), stdout=_sp.PIPE, stderr=_sp.PIPE, text=True)
        self.path = self.proc.stdout.readline().strip()
        if not self.path.startswith("/"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"cart-sim did not print a device path: {self.path!r} {err}")
        self.lines: list[tuple[float, str]] = []
        self._t = _th.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((_time.time(), line.rstrip()))

    def when(self, word: str, timeout: float = 30.0) -> float:
        end = _time.monotonic() + timeout
        while _time.monotonic() < end:
            for t, line in self.lines:
                if word in line:
                    return t
            _time.sleep(0.02)
        raise AssertionError(f"cart-sim never logged {word!r}: {self.lines[-5:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except _sp.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def write_wfdb(record, folder: Path, name: str) -> Path:
    """A Record as a real WFDB record (what the cart simulator reads)."""
    import numpy as np
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=record.fs, units=["uV"] * len(record.leads), sig_name=list(record.leads),
                p_signal=record.signals.astype(np.float64), fmt=["32"] * len(record.leads), adc_gain=[1.0] * len(record.leads),
                baseline=[0] * len(record.leads), write_dir=str(folder))
    return folder / name


def run_daemon_on(cart: Cart, state: Path, until_t: float, *, bundles=(), timeout: float = 60.0, extra: dict | None = None):
    """The daemon (in this process) on the cart's pty until stream time ``until_t``; returns (events, daemon)."""
    from edge_ecg.service.config import config_from_dict
    from edge_ecg.service.daemon import build_daemon, start_daemon

    data = {"source": f"serial:{cart.path}", "sinks": {"state_dir": str(state), "stdout": False, "evidence": False}}
    for k, v in (extra or {}).items():
        data.setdefault(k, {}).update(v)
    cfg = config_from_dict(data, base=state)
    d = build_daemon(cfg, slots=list(bundles))
    events: list[dict] = []
    d.sinks.listeners.append(lambda rec: events.append(dict(rec, _wall=_time.time())))
    start_daemon(d, ready_timeout_s=20)
    end = _time.monotonic() + timeout
    try:
        while d.pipeline.stream_t < until_t and _time.monotonic() < end and d.pipeline.error is None:
            _time.sleep(0.05)
    finally:
        d.close()
    assert d.pipeline.error is None, d.pipeline.error
    return events, d
