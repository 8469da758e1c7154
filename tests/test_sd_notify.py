"""sd_notify against a real datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from edge_ecg.service.sd_notify import Notifier, Watchdog, watchdog_interval_s


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.05)
    yield s, str(path)
    s.close()


def drain(sock, seconds):
    msgs = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            msgs.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    return msgs


def test_ready_status_watchdog_datagrams(notify_socket):
    sock, path = notify_socket
    n = Notifier(path)
    assert n.ready("source up")
    assert n.watchdog()
    assert n.stopping()
    assert drain(sock, 0.2) == ["READY=1\nSTATUS=source up", "WATCHDOG=1", "STOPPING=1"]
    n.close()


def test_abstract_namespace_address():
    name = f"@edge-ecg-test-{time.monotonic_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name[1:])
    s.settimeout(1)
    assert Notifier(name).status("hello")
    assert s.recv(100) == b"STATUS=hello"
    s.close()


def test_without_notify_socket_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and not n.ready()


def test_watchdog_interval_from_env():
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None


def test_watchdog_stops_pinging_when_pipeline_stalls(notify_socket):
    sock, path = notify_socket
    progressing = threading.Event()
    progressing.set()
    wd = Watchdog(Notifier(path), 0.05, lambda: (progressing.is_set(), "inference stuck for 31 s")).start()
    first = drain(sock, 0.4)
    assert first.count("WATCHDOG=1") >= 3
    progressing.clear()
    drain(sock, 0.1)  # a ping may be in flight
    stalled = drain(sock, 0.4)
    wd.stop()
    assert "WATCHDOG=1" not in stalled
    assert any(m.startswith("STATUS=stalled: inference stuck") for m in stalled)
