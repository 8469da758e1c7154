"""The daemon as a process: refuses a bad bundle before READY, survives SIGKILL with its event
log intact, restarts on the same state, and stops watchdog pings when inference stalls."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.alarms import read_events
from edge_ecg.alarms.control import request
from edge_ecg.service.config import config_from_dict
from edge_ecg.service.daemon import build_daemon, start_daemon
from edge_ecg.service.sd_notify import Notifier
from helpers.daemon import REPO, cli_env, tiny_bundle, write_config
from helpers.records import synthetic


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def record_path(tmp_path_factory):
    """The synthetic signal written as a real WFDB record (so the CLI daemon can replay a file)."""
    import wfdb

    folder = tmp_path_factory.mktemp("rec")
    rec = synthetic(120.0)
    wfdb.wrsamp("synth", fs=rec.fs, units=["uV", "uV"], sig_name=list(rec.leads), p_signal=rec.signals.astype(np.float64), fmt=["16", "16"], write_dir=str(folder))
    return folder / "synth"


def test_tampered_bundle_fails_check_but_the_daemon_runs_without_that_model(bundle, record_path, tmp_path):
    bad = tmp_path / "tampered"
    shutil.copytree(bundle, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    cfg = write_config(tmp_path / "c.toml", f"replay:{record_path}?speed=20", tmp_path / "state", [{"path": bad}])
    # installers: --check fails loudly, naming the file and the reason
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg), "--check"], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "model.onnx" in out.stderr and "sha256" in out.stderr.lower(), out.stderr
    # the running daemon: that model is off, model_unavailable says why, the stream is monitored
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg), "--duration", "12"], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    events = read_events(tmp_path / "state" / "events.jsonl").events
    mu = [e for e in events if e.get("alarm") == "model_unavailable"]
    assert mu and mu[0]["kind"] == "raised" and mu[0]["category"] == "technical", [e["kind"] for e in events]
    assert "model.onnx" in mu[0]["evidence"]["reason"] and "sha256" in mu[0]["evidence"]["reason"]
    assert events[-1]["kind"] == "stopped" and events[-1]["stream_s"] >= 12


def test_check_mode_verifies_bundles(bundle, record_path, tmp_path):
    cfg = write_config(tmp_path / "c.toml", f"replay:{record_path}", tmp_path / "state", [{"path": bundle, "precision": '"fp32"'}])
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg), "--check"], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "bundle test-rhythm 0.1.0: verified" in out.stdout


def test_sigkill_mid_run_then_restart_keeps_every_logged_event(record_path, tmp_path):
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.toml", f"replay:{record_path}?speed=2", state)
    proc = subprocess.Popen([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg)], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    sock = state / "c.sock"
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    confirmed = []  # events whose reply came back: the daemon had fsynced them before replying
    try:
        for i in range(25):
            reply = request(sock, {"cmd": "pause", "seconds": 10 + i})
            confirmed += [e for e in reply["events"]]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert len(confirmed) >= 25
    contents = read_events(state / "events.jsonl")
    logged = [(e["kind"], e.get("evidence", {}).get("seconds")) for e in contents.events]
    for e in confirmed:
        assert (e["kind"], e["evidence"].get("seconds")) in logged
    seqs = [e["seq"] for e in contents.events]
    assert seqs == list(range(1, len(seqs) + 1))
    # restart on the same state dir: stale socket replaced, log appended, sequence continues
    proc = subprocess.Popen([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg), "--duration", "1"], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    after = read_events(state / "events.jsonl")
    assert after.events[: len(contents.events)] == contents.events
    assert after.events[len(contents.events)]["kind"] == "started"
    assert after.events[len(contents.events)]["seq"] == seqs[-1] + 1


class HungRuntime:
    """Stands in for an inference engine that hangs (a wedged GPU cannot be produced here)."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()

    def predict(self, windows):
        self.entered.set()
        self.release.wait(30)
        return np.zeros((len(windows), 2), np.float32)


def test_stalled_inference_stops_watchdog_pings(bundle, tmp_path, monkeypatch):
    from edge_ecg.service.models import load_slot
    from edge_ecg.service.config import BundleConfig
    from edge_ecg.stream.replay_source import ReplaySource

    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(str(tmp_path / "notify"))
    nsock.settimeout(0.05)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    hung = HungRuntime()
    slot = dataclasses.replace(load_slot(BundleConfig(path=bundle, precision="fp32", threads=1)), classifier=hung)
    cfg = config_from_dict({"source": "replay:x", "sinks": {"state_dir": str(tmp_path / "state"), "stdout": False, "evidence": False}, "service": {"stall_s": 0.6}}, base=tmp_path)
    d = build_daemon(cfg, slots=[slot], source=ReplaySource(synthetic(90.0), speed=5.0), notifier=Notifier(str(tmp_path / "notify")))

    def collect(seconds):
        msgs, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msgs.append(nsock.recv(4096).decode())
            except socket.timeout:
                pass
        return msgs

    try:
        start_daemon(d)
        before = collect(1.0)  # stream t < 10 s (2 s of wall time): no window yet, pipeline progressing
        assert any(m.startswith("READY=1") for m in before), before
        assert before.count("WATCHDOG=1") >= 3
        assert hung.entered.wait(10)
        time.sleep(2.5)  # well past stall_s (0.6 s), even on a loaded machine
        nsock.setblocking(False)
        while True:  # drop what was queued before the stall was detected
            try:
                nsock.recv(4096)
            except BlockingIOError:
                break
        nsock.settimeout(0.05)
        stalled = collect(0.8)
        assert "WATCHDOG=1" not in stalled
        assert any(m.startswith("STATUS=stalled: inference stuck") for m in stalled)
    finally:
        hung.release.set()
        d.close()
        nsock.close()


def _intellivue_ecg(name: str):
    """Lead I of an IntelliVue capture as a Record in microvolts (5 uV per count around 8192)."""
    from edge_ecg.records.record import Record
    from helpers.intellivue import capture_waves

    _origin, ecg, _pleth = capture_waves(name)
    counts = np.concatenate([ecg[k] for k in sorted(ecg)]).astype(np.float64)
    return Record(signals=(counts * 5.0 - 40960.0)[:, None], fs=500.0, leads=("I",), name=name)


def test_an_operator_relearn_makes_the_wide_dominant_beat_the_patients_own(tmp_path):
    # The IntelliVue VT capture, replayed from a WFDB copy through `edge-ecg run`: VT from the first
    # beat, so VT is raised only because the dominant beat is wide and never seen at a normal rate.
    # `edge-ecg alarms relearn` (over the real control socket) tells the analyzer the rhythm is the
    # patient's own, as for a bundle-branch block that is fast at switch-on: the condition ends and
    # is not raised again. (Done during a real VT, exactly this silences it: docs/daemon.md says so.)
    from helpers.daemon import write_wfdb

    path = write_wfdb(_intellivue_ecg("1D-vt"), tmp_path / "rec", "ivvt")
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.toml", f"replay:{path}?speed=8", state)
    proc = subprocess.Popen([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg)], cwd=REPO, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = state / "c.sock"
    try:
        deadline = time.monotonic() + 60

        def vt_active() -> bool:
            st = request(sock, {"cmd": "status"})
            return any(a["alarm"] == "ventricular_tachycardia" and a["active"] for a in st["alarms"])

        while not (sock.exists() and vt_active()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert vt_active(), "VT was never raised"
        out = subprocess.run([sys.executable, "-m", "edge_ecg", "alarms", "relearn", "--socket", str(sock)], cwd=REPO, env=cli_env(),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "requested at t=" in out.stdout, out.stdout + out.stderr
        while vt_active() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not vt_active()
        time.sleep(3.0)  # 24 s more of stream at speed 8: the VT is not raised again
    finally:
        proc.terminate()
        proc.wait(30)
    events = read_events(state / "events.jsonl").events
    kinds = [(e["kind"], e.get("alarm")) for e in events]
    relearn = next(i for i, e in enumerate(events) if e["kind"] == "rhythm_relearn")
    assert events[relearn]["origin"]["via"] == "socket", events[relearn]
    assert ("raised", "ventricular_tachycardia") in kinds[:relearn]
    after = kinds[relearn:]
    assert ("latched", "ventricular_tachycardia") in after or ("cleared", "ventricular_tachycardia") in after, after
    assert ("raised", "ventricular_tachycardia") not in after, after
