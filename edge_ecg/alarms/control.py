"""The local control socket: ``status``, ``ack`` and ``pause`` for a running daemon.

A Unix stream socket created with owner-only permissions (mode 0600, set through the umask so
there is no window in which others could connect). Protocol: the client sends one JSON object
per line (``{"cmd": "status"}``, ``{"cmd": "ack", "alarm": "asystole"}``,
``{"cmd": "pause", "seconds": 60}``) and reads one JSON object per line back (``{"ok": true,
...}`` or ``{"ok": false, "error": "..."}``).

Built to stay answerable under a burst and to say who did what:

- a listen backlog of ``backlog`` (512; the kernel caps it at net.core.somaxconn), so 200 clients connecting at once are queued by the
  kernel, not refused (an operator's ``ack`` must not fail with EAGAIN during a burst);
- one I/O thread (``selectors``) accepts and reads request lines from every connection; idle
  connections cost a file descriptor, not a thread, and are closed after ``idle_timeout_s``;
  beyond ``max_connections`` open connections it stops accepting (the kernel queues the rest);
- a bounded pool of ``workers`` threads runs the requests;
- each connection's peer credentials (SO_PEERCRED: pid, uid, gid, and the process name) are the
  ``origin`` handed to the handler with every request, which writes it into the events of every
  action; peers whose uid is not the daemon's own or root are refused.
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import logging
import os
import queue
import selectors
import socket
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_ecg.errors import EdgeEcgError

log = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]
MAX_LINE = 64 * 1024


class ControlError(EdgeEcgError):
    """The control socket cannot be reached or answered with an error."""


def peer_origin(conn: socket.socket) -> dict[str, Any]:
    """``{"via": "socket", "pid", "uid", "gid", "comm"}`` of the process at the other end (SO_PEERCRED)."""
    pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    origin: dict[str, Any] = {"via": "socket", "pid": pid, "uid": uid, "gid": gid}
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            origin["comm"] = f.read(64).decode(errors="replace").strip()
    except OSError:
        pass
    return origin


class _Conn:
    __slots__ = ("sock", "buf", "origin", "last", "busy")

    def __init__(self, sock: socket.socket, origin: dict[str, Any]) -> None:
        self.sock, self.buf, self.origin, self.last, self.busy = sock, b"", origin, time.monotonic(), False


class ControlServer:
    """Serves ``handler(request, origin) -> reply`` on ``path`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], handler: Handler, *, workers: int = 4, backlog: int = 512,
                 idle_timeout_s: float = 10.0, max_connections: int = 256, allowed_uids: set[int] | None = None) -> None:
        self.path = Path(path)
        self.handler = handler
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.allowed_uids = allowed_uids if allowed_uids is not None else {os.getuid(), 0}
        self.served = 0
        self.refused = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                raise ControlError(f"{self.path}: exists and is not a socket; refusing to replace it")
            if _answers(self.path):
                raise ControlError(f"{self.path}: another daemon is listening on this control socket")
            self.path.unlink()  # stale socket of a killed daemon
        self._listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._listen.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._listen.listen(backlog)
        self._listen.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._returned: queue.SimpleQueue[_Conn] = queue.SimpleQueue()
        self._conns: dict[int, _Conn] = {}
        self._accepting = False
        self._closing = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edge-ecg-control")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._set_accepting(True)
        self._thread = threading.Thread(target=self._loop, name="edge-ecg-control-io", daemon=True)
        self._thread.start()

    # -- I/O thread ---------------------------------------------------------------------
    def _set_accepting(self, on: bool) -> None:
        if on and not self._accepting:
            self._sel.register(self._listen, selectors.EVENT_READ, "listen")
        elif not on and self._accepting:
            self._sel.unregister(self._listen)
        self._accepting = on

    def _loop(self) -> None:
        while not self._closing.is_set():
            for key, _ in self._sel.select(timeout=0.5):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._read(key.data)
            while True:
                try:
                    c = self._returned.get_nowait()
                except queue.Empty:
                    break
                c.busy = False
                c.last = time.monotonic()
                if c.sock.fileno() >= 0:
                    if not self._dispatch(c):
                        self._sel.register(c.sock, selectors.EVENT_READ, c)
            now = time.monotonic()
            for c in [c for c in self._conns.values() if not c.busy and now - c.last > self.idle_timeout_s]:
                self._drop(c)  # idle: a client that connected and said nothing
            self._set_accepting(len(self._conns) < self.max_connections)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("control socket accept failed: %s", exc)
                return
            try:
                origin = peer_origin(sock)
            except OSError:
                origin = {"via": "socket"}
            if origin.get("uid") not in self.allowed_uids:
                self.refused += 1
                log.warning("control socket: refused uid %s (pid %s)", origin.get("uid"), origin.get("pid"))
                _send_nowait(sock, {"ok": False, "error": f"uid {origin.get('uid')} may not control this daemon"})
                sock.close()
                continue
            sock.setblocking(False)
            c = _Conn(sock, origin)
            self._conns[sock.fileno()] = c
            self._sel.register(sock, selectors.EVENT_READ, c)
            if len(self._conns) >= self.max_connections:
                return

    def _read(self, c: _Conn) -> None:
        try:
            chunk = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(c)
            return
        c.buf += chunk
        c.last = time.monotonic()
        if b"\n" not in c.buf and len(c.buf) > MAX_LINE:
            _send_nowait(c.sock, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
            self._drop(c)
            return
        if b"\n" in c.buf:
            self._sel.unregister(c.sock)
            if not self._dispatch(c):
                self._sel.register(c.sock, selectors.EVENT_READ, c)

    def _dispatch(self, c: _Conn) -> bool:
        """Hand the next complete line of ``c`` to a worker; False if it holds none."""
        line, sep, rest = c.buf.partition(b"\n")
        if not sep:
            return False
        c.buf, c.busy = rest, True
        self._pool.submit(self._serve, c, line)
        return True

    def _drop(self, c: _Conn) -> None:
        self._conns.pop(c.sock.fileno(), None)
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    # -- workers ------------------------------------------------------------------------
    def _serve(self, c: _Conn, line: bytes) -> None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
            reply = dict(self.handler(req, c.origin))
        except Exception as exc:  # a bad request must never kill the server
            reply = {"ok": False, "error": str(exc)}
        self.served += 1
        data = (json.dumps(reply, default=str) + "\n").encode()
        try:
            c.sock.settimeout(2.0)
            c.sock.sendall(data)
            c.sock.setblocking(False)
        except OSError:
            pass  # the client went away; the I/O thread sees EOF and closes it
        self._returned.put(c)
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._closing.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for c in list(self._conns.values()):
            c.sock.close()
        self._conns.clear()
        self._listen.close()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _send_nowait(sock: socket.socket, reply: Mapping[str, Any]) -> None:
    try:
        sock.setblocking(False)
        sock.send((json.dumps(dict(reply)) + "\n").encode())
    except OSError:
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


def recv_reply(s: socket.socket) -> bytes:
    """One reply line from a connected control socket (up to and with its newline, or what came
    before the daemon closed it)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def request(path: str | os.PathLike[str], req: Mapping[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one request to a daemon's control socket and return its reply (``ControlError`` on failure).

    A full listen backlog (EAGAIN: a burst of clients) is retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            s.connect(os.fspath(path))
            break
        except OSError as exc:
            s.close()
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) and time.monotonic() + delay < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            raise ControlError(f"{path}: cannot connect to the daemon's control socket ({exc.strerror or exc})") from exc
    try:
        s.sendall((json.dumps(dict(req)) + "\n").encode())
        buf = recv_reply(s)
    except OSError as exc:
        raise ControlError(f"{path}: no reply from the daemon ({exc.strerror or exc})") from exc
    finally:
        s.close()
    try:
        reply = json.loads(buf)
    except ValueError as exc:
        raise ControlError(f"{path}: daemon sent an unreadable reply {buf[:80]!r}") from exc
    if not reply.get("ok", False):
        raise ControlError(f"{path}: {reply.get('error', 'request failed')}")
    return reply


def manager_handler(manager: Any, extra_status: Callable[[], Mapping[str, Any]] | None = None,
                    audit: Callable[[dict[str, Any]], None] | None = None,
                    relearn: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None) -> Handler:
    """The request handler of an ``AlarmManager`` (plus pipeline status from ``extra_status``):
    ``AlarmActions.perform``, the one API every control channel uses."""
    from edge_ecg.alarms.actions import AlarmActions

    return AlarmActions(manager, extra_status, audit, relearn).perform
