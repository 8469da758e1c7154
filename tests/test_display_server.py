"""The display server without a browser: who may act, what it refuses, and that nothing a page does
can slow the alarm path. Daemons here run in this process on a real MIT-BIH record replayed
(``replay:`` source), or as a process under ``systemd-socket-activate`` (how the service gets its
listening socket while it runs with ``PrivateNetwork=yes``)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.alarms import read_events
from edge_ecg.display.feed import GAP, Decimator, DisplayFeed, FeedLimits, encode_rows
from edge_ecg.errors import ConfigError
from edge_ecg.service.config import config_from_dict
from helpers.daemon import REPO, cli_env

PIN = "2580"


def _request(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None) -> tuple[int, dict | bytes]:
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if r.headers.get("Content-Type", "").startswith("application/json") else raw)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _daemon(tmp_path: Path, mitdb_dir: Path, *, speed: float = 1.0, display: dict | None = None, stop: float = 330.0, block: float = 0.02):
    from edge_ecg.service.daemon import build_daemon, start_daemon

    cfg = config_from_dict({
        "source": f"replay:{mitdb_dir / '205'}?speed={speed}&start=279&stop={stop}&block={block}",
        "sinks": {"state_dir": str(tmp_path / "state"), "stdout": False, "evidence": False},
        "display": {"listen": "127.0.0.1:0", "pin": PIN, **(display or {})},
    }, base=tmp_path)
    d = build_daemon(cfg)
    start_daemon(d)
    return d


@pytest.fixture
def daemon(tmp_path, mitdb_dir):
    d = _daemon(tmp_path, mitdb_dir)
    yield d
    d.close()


def test_page_and_assets_are_served_with_a_strict_policy(daemon):
    url = daemon.display.url
    with urllib.request.urlopen(url, timeout=10) as r:
        page = r.read().decode()
        csp = r.headers["Content-Security-Policy"]
    assert "/static/display.js" in page and "http" not in page.replace("http-equiv", "")
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    code, body = _request(url + "static/display.js")
    assert code == 200 and b"EventSource" in body
    assert b"setInterval" not in body and b"setTimeout" not in body, "pushed, never polled"
    assert _request(url + "static/../../etc/passwd")[0] == 404
    assert _request(url + "evidence/..%2Fevents.jsonl")[0] == 404


def test_foreign_host_names_and_cross_origin_posts_are_refused(daemon):
    url = daemon.display.url
    assert _request(url + "api/state", headers={"Host": "attacker.example"})[0] == 421, "DNS rebinding: only loopback names"
    assert _request(url + "api/state", headers={"Host": "localhost:1234"})[0] == 200
    code, reply = _request(url + "api/ack", "POST", {"secret": PIN}, {"Origin": "http://attacker.example"})
    assert code == 403 and "cross-origin" in reply["error"]
    req = urllib.request.Request(url + "api/ack", data=b"secret=" + PIN.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 415, "a cross-site form post cannot act"


def test_wrong_secrets_lock_actions_out_and_every_attempt_is_logged(daemon):
    url = daemon.display.url
    for _ in range(5):
        assert _request(url + "api/pause", "POST", {"secret": "9999"})[0] == 403
    code, reply = _request(url + "api/pause", "POST", {"secret": PIN})
    assert code == 429 and "locked" in reply["error"], "after 5 wrong secrets even the right one waits"
    events = read_events(daemon.cfg.sinks.event_log).events
    actions = [e for e in events if e.get("kind") == "operator_action"]
    assert len(actions) == 6 and not any(a["accepted"] for a in actions)
    assert all(a["origin"] == {"via": "display", "remote": "127.0.0.1", "agent": a["origin"].get("agent")} for a in actions)


def test_pause_with_the_secret_is_logged_with_its_origin(daemon):
    url = daemon.display.url
    code, reply = _request(url + "api/pause", "POST", {"secret": PIN, "seconds": 30})
    assert code == 200 and reply["ok"]
    assert daemon.manager.status()["paused_until"] is not None
    events = read_events(daemon.cfg.sinks.event_log).events
    paused = [e for e in events if e.get("kind") == "audio_paused"]
    assert paused and paused[-1]["evidence"]["origin"]["via"] == "display" and paused[-1]["evidence"]["seconds"] == 30
    acc = [e for e in events if e.get("kind") == "operator_action" and e["accepted"]]
    assert acc[-1]["action"] == "pause" and acc[-1]["seconds"] == 30


def test_relearn_from_the_display_needs_the_secret_and_reaches_the_analyzer(daemon, caplog):
    url = daemon.display.url
    assert daemon.display.feed.state()["relearn_enabled"] is True
    end = time.monotonic() + 20
    while daemon.pipeline.stream_t <= 1.0 and time.monotonic() < end:
        time.sleep(0.05)
    code, reply = _request(url + "api/relearn", "POST", {"secret": "0000"})
    assert code == 403 and not reply["ok"]
    with caplog.at_level("WARNING", logger="edge_ecg.service.pipeline"):
        code, reply = _request(url + "api/relearn", "POST", {"secret": PIN})
        assert code == 200 and reply["ok"] and reply["relearn"].startswith("requested at t="), reply
        end = time.monotonic() + 20
        while not any("rhythm relearned" in r.getMessage() for r in caplog.records) and time.monotonic() < end:
            time.sleep(0.05)
    assert any("rhythm relearned" in r.getMessage() for r in caplog.records), "the pipeline applied it between blocks"
    events = read_events(daemon.cfg.sinks.event_log).events
    notes = [e for e in events if e.get("kind") == "rhythm_relearn"]
    assert len(notes) == 1 and notes[0]["origin"]["via"] == "display", "only the accepted request relearned, and says who"
    acts = [(e["accepted"], e.get("reason")) for e in events if e.get("kind") == "operator_action" and e["action"] == "relearn"]
    assert acts == [(False, "wrong secret"), (True, None)]


def test_actions_are_disabled_without_a_configured_secret(tmp_path, mitdb_dir):
    from edge_ecg.service.daemon import build_daemon

    cfg = config_from_dict({"source": f"replay:{mitdb_dir / '205'}?speed=1&start=279&stop=285",
                            "sinks": {"state_dir": str(tmp_path / "s"), "stdout": False}, "display": {"listen": "127.0.0.1:0"}}, base=tmp_path)
    d = build_daemon(cfg)
    d.display.start()
    try:
        code, reply = _request(d.display.url + "api/ack", "POST", {"secret": "anything"})
        assert code == 403 and "disabled" in reply["error"]
        assert d.display.feed.state()["control_enabled"] is False
        assert d.display.feed.state()["relearn_enabled"] is False
        assert _request(d.display.url + "api/relearn", "POST", {"secret": "anything"})[0] == 403
    finally:
        d.close()


def test_config_keeps_the_display_on_loopback_and_the_secret_private(tmp_path):
    base = {"source": "serial:/dev/null"}
    with pytest.raises(ConfigError, match=r"display\.listen.*not a loopback address"):
        config_from_dict({**base, "display": {"listen": "0.0.0.0:8080"}}, origin="x.toml")
    assert config_from_dict({**base, "display": {"listen": "0.0.0.0:8080", "allow_remote": True}}).display.allow_remote
    with pytest.raises(ConfigError, match=r"display\.pin"):
        config_from_dict({**base, "display": {"pin": "12"}})
    with pytest.raises(ConfigError, match=r"display\.listen"):
        config_from_dict({**base, "display": {"listen": "8080"}})
    token = tmp_path / "display.token"
    token.write_text("424242\n")
    token.chmod(0o644)
    cfg = config_from_dict({**base, "display": {"token_file": str(token)}})
    with pytest.raises(ConfigError, match="readable by everyone"):
        cfg.display.secret()
    token.chmod(0o600)
    assert cfg.display.secret() == "424242"
    cred = tmp_path / "creds"
    cred.mkdir()
    (cred / "display-token").write_text("135791")
    (cred / "display-token").chmod(0o400)
    os.environ["CREDENTIALS_DIRECTORY"] = str(cred)
    try:
        assert cfg.display.secret() == "135791", "under systemd the credential copy is read"
    finally:
        del os.environ["CREDENTIALS_DIRECTORY"]
    with pytest.raises(ConfigError, match=r"audio\.level_dbfs"):
        config_from_dict({**base, "audio": {"level_dbfs": 3}})
    assert config_from_dict(base).display is None, "no [display] table, no display"


def test_unix_socket_listener(tmp_path, mitdb_dir):
    d = _daemon(tmp_path, mitdb_dir, display={"listen": f"unix:{tmp_path / 'display.sock'}"}, stop=285)
    try:
        assert d.display.url == f"unix:{tmp_path / 'display.sock'}"
        assert oct((tmp_path / "display.sock").stat().st_mode & 0o777) == oct(0o660)
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(tmp_path / "display.sock"))
        conn = http.client.HTTPConnection("localhost")
        conn.sock = s
        conn.request("GET", "/api/state")
        r = conn.getresponse()
        assert r.status == 200 and "alarms" in json.loads(r.read())
        conn.close()
    finally:
        d.close()


def test_a_stuck_page_or_a_failing_observer_never_holds_up_the_alarm_path(tmp_path, mitdb_dir):
    """Replay at 10x real time with a page that never reads and an observer that always
    raises: the stream is processed to its end, the VT alarm is raised, the stuck page's frames
    are dropped oldest-first and its queue stays bounded."""

    class Broken:
        def on_block(self, block, update):
            raise RuntimeError("display bug")

    d = _daemon(tmp_path, mitdb_dir, speed=10, stop=340, block=0.1)
    d.pipeline.add_observer(Broken())
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", int(d.display.url.rsplit(":", 1)[1].strip("/"))))
    stuck.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        assert d.pipeline.wait(60), "the replay finished"
        assert d.pipeline.error is None and d.pipeline.stream_t >= 60
        assert "ventricular_tachycardia" in d.manager.counts, "the VT alarm was raised"
        feed = d.display.feed
        time.sleep(2 * feed.limits.frame_s)
        subs = list(feed._subs)
        assert subs, "the stuck page is still connected"
        assert max(len(s._frames) for s in subs) <= feed.limits.client_frames
        assert feed.stats()["frames_dropped"] > 0, "the stuck page's oldest frames were dropped"
    finally:
        stuck.close()
        d.close()


def test_decimator_keeps_r_peaks_and_gaps():
    fs = 500.0
    dec = Decimator(fs, 1)
    assert dec.k == 2 and dec.fs == 250.0
    x = np.zeros((101, 1), np.float32)
    x[51, 0] = 1500.0  # an R peak on an odd sample: a plain 1-in-2 pick would lose it
    j, rows = dec.push(0, x)
    assert j == 0 and rows.shape == (50, 1) and rows.max() == 1500.0
    j, rows = dec.push(101, np.ones((9, 1), np.float32))
    assert j == 50 and rows.shape == (5, 1), "the carried sample joins the next block"
    j, rows = dec.push(1000, np.ones((4, 1), np.float32))  # a gap in the source
    assert j == 500 and rows.shape == (2, 1)
    enc = np.frombuffer(__import__("base64").b64decode(encode_rows(np.array([[np.nan], [12.4]], np.float32))), "<i2")
    assert list(enc) == [GAP, 12]


def test_subscriber_queue_drops_oldest_frames_but_keeps_alarm_state():
    feed = DisplayFeed(lambda: {"alarms": []}, lambda: "streaming", limits=FeedLimits(client_frames=4))
    sub = feed.subscribe("test")
    for i in range(10):
        sub.push_frame(f"frame{i}".encode())
    sub.push_message(b"alarm")
    got = sub.take(0.1)
    assert got[0].startswith(b"event: hello") and got[1] == b"alarm"
    assert got[2:] == [b"frame6", b"frame7", b"frame8", b"frame9"] and sub.frames_dropped == 6


@pytest.mark.slow
def test_socket_activation_serves_the_page_from_a_socket_systemd_passed(tmp_path, mitdb_dir):
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate (package systemd) is not installed")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    state = tmp_path / "state"
    cfg = tmp_path / "edge-ecg.toml"
    cfg.write_text(f'source = "replay:{mitdb_dir / "205"}?speed=1&start=279&stop=340"\n[sinks]\nstate_dir = "{state}"\nstdout = false\n'
                   f'[display]\nlisten = "127.0.0.1:9"\n')  # the config's port is not used: the passed socket is
    proc = subprocess.Popen([tool, "-l", f"127.0.0.1:{port}", "--fdname=display", sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg)],
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 30
        code = None
        while time.monotonic() < end and proc.poll() is None:
            try:  # the first connection starts the daemon (socket activation)
                code, body = _request(f"http://127.0.0.1:{port}/api/state")
                if code == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        assert code == 200, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert (state / "display.url").read_text().strip() == f"http://127.0.0.1:{port}/"
        notes = [e for e in read_events(state / "events.jsonl").events if e.get("kind") == "display"]
        assert notes and notes[0]["listen"] == "systemd socket"
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stderr.close()


def test_units_verify_and_install_stages_the_display(tmp_path):
    """The socket unit and the service verify together; install.sh stages the socket, the kiosk user
    unit and a root-only PIN, and the shipped config's [display]/[audio] are valid."""
    from edge_ecg.service.config import load_config

    env = dict(os.environ, DESTDIR=str(tmp_path / "root"), SKIP_VENV="1")
    out = subprocess.run(["sh", str(REPO / "systemd" / "install.sh"), "--no-start"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    root = tmp_path / "root"
    token = root / "etc/edge-ecg/display.token"
    assert token.read_text().strip().isdigit() and len(token.read_text().strip()) == 6
    assert token.stat().st_mode & 0o077 == 0, "the PIN file is root-only"
    assert (root / "etc/systemd/system/edge-ecg-display.socket").is_file()
    kiosk = (root / "etc/systemd/user/edge-ecg-kiosk.service").read_text()
    assert "--kiosk" in kiosk and "--app=http://127.0.0.1:8080/" in kiosk
    socket_unit = (REPO / "systemd" / "edge-ecg-display.socket").read_text()
    assert "ListenStream=127.0.0.1:8080" in socket_unit and "FileDescriptorName=display" in socket_unit
    service = (REPO / "systemd" / "edge-ecg.service").read_text()
    assert "Sockets=edge-ecg-display.socket" in service and "LoadCredential=display-token:/etc/edge-ecg/display.token" in service
    assert "DeviceAllow=char-alsa rw" in service and "PrivateNetwork=yes" in service
    cfg = load_config(REPO / "systemd" / "edge-ecg.toml")
    assert cfg.display.listen == "127.0.0.1:8080" and cfg.display.token_file == Path("/etc/edge-ecg/display.token")
    assert cfg.audio.enabled and cfg.audio.device == "default"
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return
    stand_in = tmp_path / "bin" / "edge-ecg"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    (units / "edge-ecg.service").write_text(service.replace("/opt/edge-ecg/venv/bin/edge-ecg", str(stand_in)))
    (units / "edge-ecg-display.socket").write_text(socket_unit)
    res = subprocess.run([tool, "verify", "--man=no", str(units / "edge-ecg.service"), str(units / "edge-ecg-display.socket")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "edge-ecg" not in res.stderr, res.stdout + res.stderr
