"""The bedside display's HTTP server: the page, its assets, a Server-Sent Events stream and three actions.

Why the standard library (``http.server`` + SSE) and not a web framework: the page needs one
push stream (server -> page) and a few small POSTs; SSE is plain HTTP that ``EventSource``
reconnects by itself, so a thread per page on ``ThreadingHTTPServer`` does it with no dependency
to vet for aarch64 wheels, no event loop beside the pipeline's threads, and nothing to update on
the unit. Eight pages at most (``max_clients``); each page's write has a timeout, so a stuck
browser costs one idle thread until it is dropped, never the pipeline's time.

Routes: ``/`` the page, ``/static/*`` its script and style, ``/events`` the SSE stream,
``/api/state`` and ``/api/history`` (JSON, for scripts), ``/evidence/NAME.png`` the evidence
snapshots, ``/healthz``; ``POST /api/ack``, ``/api/pause``, ``/api/relearn``, ``/api/unlock`` with a
JSON body ``{"secret": ..., "alarm": ..., "seconds": ...}``. Defences beyond the secret: only
loopback Host names are served on TCP (no DNS rebinding), POSTs must be ``application/json`` from
the same origin (no cross-site form posts), and the page's Content-Security-Policy allows nothing
but the daemon itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_ecg.alarms.actions import AlarmActions
from edge_ecg.display.access import Gate
from edge_ecg.display.feed import DisplayFeed
from edge_ecg.display.settings import DisplayConfig

log = logging.getLogger(__name__)

STATIC = {"index.html": "text/html; charset=utf-8", "display.js": "text/javascript; charset=utf-8", "display.css": "text/css; charset=utf-8"}
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
_EVIDENCE = re.compile(r"^[A-Za-z0-9_.-]+\.png$")


def _static_files() -> dict[str, bytes]:
    root = resources.files("edge_ecg.display") / "static"
    return {name: (root / name).read_bytes() for name in STATIC}


def inherited_socket(name: str = "display") -> socket.socket | None:
    """A listening socket passed by systemd socket activation (``LISTEN_FDS``) named ``name``, if any."""
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return None
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for i in range(count):
        if (names[i] if i < len(names) else "") == name or (count == 1 and not any(names)):
            return socket.socket(fileno=3 + i)
    return None


class DisplayApp:
    """What the handlers act on: the feed, the alarm manager, the secret gate and the event log."""

    def __init__(self, cfg: DisplayConfig, feed: DisplayFeed, manager: Any, note: Callable[..., Mapping[str, Any]],
                 evidence_dir: Path | None = None,
                 relearn: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None) -> None:
        self.cfg = cfg
        self.feed = feed
        self.manager = manager
        self.note = note
        self.evidence_dir = evidence_dir
        self.gate = Gate(cfg.secret)
        self.actions = AlarmActions(manager, relearn=relearn)
        self.static = _static_files()
        self.stopping = threading.Event()

    def log_action(self, action: str, origin: Mapping[str, Any], accepted: bool, **fields: Any) -> None:
        try:
            rec = self.note("operator_action", action=action, accepted=accepted, origin=dict(origin), t=round(self.manager.now, 4), **fields)
        except Exception as exc:  # logging an action must not fail the request path silently either
            log.error("could not log operator action %s: %s", action, exc)
            return
        self.feed.on_event(dict(rec))

    def act(self, action: str, body: Mapping[str, Any], origin: Mapping[str, Any]) -> tuple[int, dict]:
        verdict = self.gate.check(body.get("secret"))
        detail = {k: body[k] for k in ("alarm", "seconds") if body.get(k) is not None}
        if not verdict.ok:
            self.log_action(action, origin, False, reason=verdict.reason, **detail)
            return verdict.status, {"ok": False, "error": verdict.reason}
        if action == "unlock":  # only checks the secret (the page then keeps it for unlock_s)
            reply: dict[str, Any] = {"ok": True, "events": [], "audio": self.manager.audio()}
        else:  # the same validated action the control socket performs
            reply = self.actions.perform({"cmd": action, "alarm": body.get("alarm"), "seconds": body.get("seconds")}, origin)
        if not reply["ok"]:
            self.log_action(action, origin, False, reason=reply["error"], **detail)
            return 400, reply
        events = reply.get("events", [])  # a relearn changes no alarm: it has none
        self.log_action(action, origin, True, events=len(events), **detail)
        return 200, {**reply, "unlock_s": self.cfg.unlock_s}


class Handler(BaseHTTPRequestHandler):
    server_version = "edge-ecg-display"
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection frees its thread after this

    @property
    def app(self) -> DisplayApp:
        return self.server.app  # type: ignore[attr-defined]

    # -- plumbing ----------------------------------------------------------------------
    def log_message(self, fmt: str, *args: Any) -> None:  # requests go to debug, not stderr
        log.debug("%s %s", self.remote, fmt % args)

    @property
    def remote(self) -> str:
        if isinstance(self.client_address, tuple) and self.client_address:
            return str(self.client_address[0])
        return "unix"

    def origin(self) -> dict:
        o = {"via": "display", "remote": self.remote}
        if self.remote == "unix":
            try:
                pid, uid, gid = struct.unpack("3i", self.connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
                o["uid"] = uid
            except OSError:
                pass
        ua = self.headers.get("User-Agent")
        if ua:
            o["agent"] = ua[:120]
        return o

    def _send(self, code: int, body: bytes, ctype: str, extra: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj, default=str).encode(), "application/json")

    def _host_ok(self) -> bool:
        if self.server.unix or self.app.cfg.allow_remote:  # type: ignore[attr-defined]
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name in LOOPBACK_NAMES

    # -- GET ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._json(421, {"ok": False, "error": "the display answers loopback host names only"})
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return self._send(200, self.app.static["index.html"], STATIC["index.html"])
        if path.startswith("/static/") and path[len("/static/"):] in STATIC:
            name = path[len("/static/"):]
            return self._send(200, self.app.static[name], STATIC[name])
        if path == "/events":
            return self._events()
        if path == "/api/state":
            return self._json(200, self.app.feed.state())
        if path == "/api/history":
            return self._json(200, list(self.app.feed.history))
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon")
        if path == "/healthz":
            return self._send(200, b"ok\n", "text/plain")
        if path.startswith("/evidence/"):
            return self._evidence(path[len("/evidence/"):])
        return self._json(404, {"ok": False, "error": f"no such page {path}"})

    def _evidence(self, name: str) -> None:
        folder = self.app.evidence_dir
        if folder is None or not _EVIDENCE.match(name):
            return self._json(404, {"ok": False, "error": "no such evidence"})
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError:
            return self._json(404, {"ok": False, "error": f"evidence {name} is not written (yet)"})
        self._send(200, data, "image/png")

    def _events(self) -> None:
        app = self.app
        if app.feed.clients >= app.cfg.max_clients:
            return self._json(503, {"ok": False, "error": f"{app.cfg.max_clients} pages are open already"})
        sub = app.feed.subscribe(self.remote)
        threading.current_thread().name = "edge-ecg-sse"  # counted as display CPU by bench/bench_display.py
        self.close_connection = True
        try:
            self.connection.settimeout(10.0)
            # a small kernel buffer: a page that stops reading fills it within seconds, then its
            # own queue drops the oldest frames (fresh data when it recovers, bounded memory)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not app.stopping.is_set() and not sub.closed:
                items = sub.take(timeout=10.0)
                self.wfile.write(b"".join(items) if items else b": keepalive\n\n")
                self.wfile.flush()
        except (OSError, ValueError):  # the page went away or stopped reading
            pass
        finally:
            app.feed.unsubscribe(sub)

    # -- POST --------------------------------------------------------------------------
    def do_POST(self) -> None:
        if not self._host_ok():
            return self._json(421, {"ok": False, "error": "the display answers loopback host names only"})
        action = {"/api/ack": "ack", "/api/pause": "pause", "/api/relearn": "relearn", "/api/unlock": "unlock"}.get(self.path)
        if action is None:
            return self._json(404, {"ok": False, "error": f"no such action {self.path}"})
        origin_hdr, host = self.headers.get("Origin"), self.headers.get("Host")
        if origin_hdr and origin_hdr not in (f"http://{host}", "null" if self.server.unix else ""):  # type: ignore[attr-defined]
            return self._json(403, {"ok": False, "error": "cross-origin request refused"})
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._json(415, {"ok": False, "error": "send application/json"})
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n > 4096:
                raise ValueError("body too large")
            body = json.loads(self.rfile.read(n) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            return self._json(400, {"ok": False, "error": f"bad request: {exc}"})
        code, reply = self.app.act(action, body, self.origin())
        self._json(code, reply)


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    unix = False


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    unix = True


class DisplayServer:
    """Serves ``app`` on the config's address (or a socket systemd passed) in a background thread."""

    def __init__(self, app: DisplayApp, sock: socket.socket | None = None) -> None:
        self.app = app
        cfg = app.cfg
        sock = sock if sock is not None else inherited_socket()
        if sock is not None:
            fam = sock.family
            if fam == socket.AF_UNIX:
                self._server = _UnixServer(sock.getsockname(), Handler, bind_and_activate=False)
            else:
                server_cls = type("_PassedTCPServer", (_TCPServer,), {"address_family": fam})
                self._server = server_cls(sock.getsockname()[:2], Handler, bind_and_activate=False)
            self._server.socket.close()
            self._server.socket = sock
            self.source = "systemd socket"
        elif cfg.unix_path is not None:
            path = cfg.unix_path
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and not path.is_dir():
                path.unlink()
            old = os.umask(0o117)
            try:
                self._server = _UnixServer(str(path), Handler)
            finally:
                os.umask(old)
            self.source = "config"
        else:
            host, port = cfg.host_port()
            server_cls = type("_ConfigTCPServer", (_TCPServer,), {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
            self._server = server_cls((host, port), Handler)
            self.source = "config"
        self._server.app = app  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, name="edge-ecg-display-http", daemon=True)

    @property
    def url(self) -> str:
        addr = self._server.server_address
        if isinstance(addr, (str, bytes)):
            return f"unix:{os.fsdecode(addr)}"
        host, port = addr[0], addr[1]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> "DisplayServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.app.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        path = self.app.cfg.unix_path
        if path is not None and self.source == "config":
            try:
                path.unlink()
            except OSError:
                pass
