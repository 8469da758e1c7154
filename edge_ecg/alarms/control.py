"""The local control socket: ``status``, ``ack`` and ``pause`` for a running daemon.

A Unix stream socket created with owner-only permissions (mode 0600, set through the umask so
there is no window in which others could connect). Protocol: the client sends one JSON object
per line (``{"cmd": "status"}``, ``{"cmd": "ack", "alarm": "asystole"}``,
``{"cmd": "pause", "seconds": 60}``) and reads one JSON object per line back (``{"ok": true,
...}`` or ``{"ok": false, "error": "..."}``). Hand-written over ``socketserver`` because the
whole protocol is a line each way.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_ecg.errors import EdgeEcgError

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class ControlError(EdgeEcgError):
    """The control socket cannot be reached or answered with an error."""


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class ControlServer:
    """Serves ``handler(request) -> reply`` on ``path`` in a background thread."""

    def __init__(self, path: str | os.PathLike[str], handler: Handler) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise ControlError(f"{self.path}: exists and is not a socket; refusing to replace it")
            if _answers(self.path):
                raise ControlError(f"{self.path}: another daemon is listening on this control socket")
            self.path.unlink()  # stale socket of a killed daemon
        outer_handler = handler

        class _Req(socketserver.StreamRequestHandler):
            def handle(self) -> None:  # noqa: D401 - socketserver API
                for raw in self.rfile:
                    try:
                        req = json.loads(raw)
                        if not isinstance(req, dict):
                            raise ValueError("request must be a JSON object")
                        reply = dict(outer_handler(req))
                    except Exception as exc:  # a bad request must never kill the server
                        reply = {"ok": False, "error": str(exc)}
                    self.wfile.write((json.dumps(reply, default=str) + "\n").encode())
                    self.wfile.flush()

        old = os.umask(0o177)
        try:
            self._server = _Server(str(self.path), _Req)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="edge-ecg-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def request(path: str | os.PathLike[str], req: Mapping[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one request to a daemon's control socket and return its reply (``ControlError`` on failure)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        try:
            s.connect(os.fspath(path))
        except OSError as exc:
            raise ControlError(f"{path}: cannot connect to the daemon's control socket ({exc.strerror or exc})") from exc
        s.sendall((json.dumps(dict(req)) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    try:
        reply = json.loads(buf)
    except ValueError as exc:
        raise ControlError(f"{path}: daemon sent an unreadable reply {buf[:80]!r}") from exc
    if not reply.get("ok", False):
        raise ControlError(f"{path}: {reply.get('error', 'request failed')}")
    return reply


def manager_handler(manager: Any, extra_status: Callable[[], Mapping[str, Any]] | None = None) -> Handler:
    """The request handler of an ``AlarmManager`` (plus pipeline status from ``extra_status``)."""

    def handle(req: Mapping[str, Any]) -> Mapping[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            reply: dict[str, Any] = {"ok": True, **manager.status()}
            if extra_status is not None:
                reply["pipeline"] = dict(extra_status())
            return reply
        if cmd == "ack":
            events = manager.acknowledge(name=req.get("alarm") or None)
            return {"ok": True, "events": [e.to_dict() for e in events], "audio": manager.audio()}
        if cmd == "pause":
            seconds = req.get("seconds")
            events = manager.pause_audio(seconds=None if seconds is None else float(seconds))
            return {"ok": True, "events": [e.to_dict() for e in events], "audio": manager.audio()}
        return {"ok": False, "error": f"unknown command {cmd!r} (allowed: status, ack, pause)"}

    return handle
