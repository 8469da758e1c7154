"""The control socket: owner-only permissions, status/ack/pause through the real CLI client."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ecg.alarms import AlarmManager
from edge_ecg.alarms.control import ControlError, ControlServer, manager_handler, recv_reply, request

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path):
    m = AlarmManager()
    path = tmp_path / "control.sock"
    server = ControlServer(path, manager_handler(m, lambda: {"windows": 3}))
    yield m, path
    server.close()


def test_socket_is_owner_only(served):
    _, path = served
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600


def test_status_ack_pause_over_socket(served):
    m, path = served
    m.set_condition("asystole", True, 10.0)
    st = request(path, {"cmd": "status"})
    assert st["audio"] == "sounding-high" and st["alarms"][0]["alarm"] == "asystole"
    assert st["pipeline"] == {"windows": 3}
    r = request(path, {"cmd": "pause", "seconds": 30})
    assert r["audio"] == "paused" and r["events"][0]["kind"] == "audio_paused"
    r = request(path, {"cmd": "ack", "alarm": "asystole"})
    assert r["events"][0]["kind"] == "acknowledged" and r["audio"] == "off"
    with pytest.raises(ControlError, match="unknown command"):
        request(path, {"cmd": "reboot"})
    with pytest.raises(ControlError, match="no alarm 'vf'"):
        request(path, {"cmd": "ack", "alarm": "vf"})


def test_cli_client(served):
    m, path = served
    m.set_condition("leads_off", True, 1.0)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "alarms", "status", "--socket", str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "leads_off" in out.stdout and "medium" in out.stdout
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "alarms", "pause", "--seconds", "nan", "--socket", str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--seconds: must be a finite number" in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "alarms", "ack", "--socket", str(path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert m.audio() == "off"


def test_second_server_on_live_socket_is_refused_and_stale_socket_replaced(tmp_path):
    m = AlarmManager()
    path = tmp_path / "c.sock"
    s1 = ControlServer(path, manager_handler(m))
    with pytest.raises(ControlError, match="another daemon"):
        ControlServer(path, manager_handler(m))
    s1.close()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a killed daemon leaves its socket file behind
    stale.bind(str(path))
    stale.close()
    s2 = ControlServer(path, manager_handler(m))
    assert request(path, {"cmd": "status"})["ok"]
    s2.close()


def test_client_error_names_socket(tmp_path):
    with pytest.raises(ControlError, match="cannot connect"):
        request(tmp_path / "nobody.sock", {"cmd": "status"})


def raw_request(path, payload: bytes) -> dict:
    """A request as bytes (NaN is valid for Python's json module, so a client can send it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    s.sendall(payload + b"\n")
    buf = recv_reply(s)
    s.close()
    import json

    return json.loads(buf)


def test_pause_seconds_must_be_a_finite_number_within_limits(tmp_path):
    audited = []
    m = AlarmManager(audio_pause_s=120)
    m.set_condition("asystole", True, 1.0)
    path = tmp_path / "c.sock"
    server = ControlServer(path, manager_handler(m, audit=audited.append))
    try:
        for bad in (b"NaN", b"Infinity", b"-Infinity", b"0", b"-5", b'"60"', b"true", b"1e9"):
            reply = raw_request(path, b'{"cmd": "pause", "seconds": ' + bad + b"}")
            assert reply["ok"] is False and "seconds must" in reply["error"], (bad, reply)
        assert m.audio() == "sounding-high", "no refused pause silenced anything"
        assert len(audited) == 8 and all(a["kind"] == "action_refused" and a["origin"]["pid"] == os.getpid() for a in audited)
        reply = request(path, {"cmd": "pause", "seconds": 600})  # longer than the config allows: cut, and said so
        assert reply["events"][0]["evidence"]["seconds"] == 120 and "cut to 120" in reply["note"]
    finally:
        server.close()
    with pytest.raises(ValueError, match="finite"):
        m.pause_audio(seconds=float("nan"))


def test_every_action_names_its_origin_from_so_peercred(served):
    m, path = served
    m.set_condition("asystole", True, 1.0)
    events = request(path, {"cmd": "ack", "alarm": "asystole"})["events"]
    origin = events[0]["evidence"]["origin"]
    assert origin["via"] == "socket" and origin["uid"] == os.getuid() and origin["pid"] == os.getpid() and origin["gid"] == os.getgid()
    assert origin["comm"]  # the process name, for the log reader
    paused = request(path, {"cmd": "pause", "seconds": 30})["events"][0]
    assert paused["evidence"]["origin"]["pid"] == os.getpid()


def test_idle_clients_cost_no_threads_and_are_closed(tmp_path):
    import threading

    m = AlarmManager()
    path = tmp_path / "c.sock"
    server = ControlServer(path, manager_handler(m), idle_timeout_s=1.0, workers=4)
    idle = []
    try:
        threads_before = threading.active_count()
        for _ in range(300):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(path))
            idle.append(s)
        assert request(path, {"cmd": "status"})["ok"], "answered while 300 clients sit idle"
        assert threading.active_count() - threads_before <= 4, "a bounded pool, not a thread per client"
        import time

        time.sleep(2.5)
        closed = 0
        for s in idle:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                pass
        assert closed == 300, "idle connections are closed after idle_timeout_s"
    finally:
        for s in idle:
            s.close()
        server.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
def test_another_uid_is_refused_even_when_the_socket_mode_lets_it_connect():
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="edge-ecg-uid-"))  # pytest's tmp_path is not traversable by other uids
    os.chmod(folder, 0o755)
    path = folder / "c.sock"
    server = ControlServer(path, manager_handler(AlarmManager()))
    os.chmod(path, 0o666)
    try:
        got = _as_nobody(path)
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert b"uid 65534 may not control this daemon" in got, got


def _as_nobody(path) -> bytes:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(str(path))
            try:
                s.sendall(b'{"cmd": "ack"}\n')
            except OSError:
                pass  # the daemon may have answered and hung up already
            os.write(w, s.recv(4096))
        except OSError as exc:
            os.write(w, str(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    got = os.read(r, 4096)
    os.close(r)
    os.waitpid(pid, 0)
    return got


def test_relearn_is_refused_where_no_rhythm_analysis_is_behind_the_channel(served):
    # the alarm manager alone (as the display's channel is) has no analyzer to relearn
    _, path = served
    with pytest.raises(ControlError, match="relearn is not available"):
        request(path, {"cmd": "relearn"})
