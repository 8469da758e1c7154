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
from edge_ecg.alarms.control import ControlError, ControlServer, manager_handler, request

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
