"""``[display]`` and ``[audio]`` of the daemon config, parsed with the config's own checked tables.

The display listens on loopback by default. ``listen`` is ``HOST:PORT`` (port 0 = any free port,
for tests and the demo) or ``unix:PATH``; a listening socket handed over by systemd
(``edge-ecg-display.socket``, ``FileDescriptorName=display``) is used instead when present, which
is how the page reaches a daemon that runs with ``PrivateNetwork=yes``. Control actions need the
secret: ``pin`` in the config, or ``token_file`` (for the service: a systemd credential, so the
file stays root-only). With neither, the page shows the buttons disabled.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edge_ecg.errors import ConfigError
from edge_ecg.sound.sounder import SoundConfig

DISPLAY_KEYS = {"enabled", "listen", "pin", "token_file", "unlock_s", "px_per_mm", "allow_remote", "max_clients", "history"}
AUDIO_KEYS = {"enabled", "device", "level_dbfs", "probe_s"}
CREDENTIAL = "display-token"  # LoadCredential= name in systemd/edge-ecg.service
CSS_PX_PER_MM = 96 / 25.4  # the browser's idea of a millimetre; set px_per_mm for the real panel


@dataclass(frozen=True)
class DisplayConfig:
    enabled: bool = False
    listen: str = "127.0.0.1:8080"
    pin: str | None = None
    token_file: Path | None = None
    unlock_s: float = 60.0  # the page keeps an entered secret this long, for several actions in a row
    px_per_mm: float = CSS_PX_PER_MM  # screen pixels per millimetre: 25 mm/s and 10 mm/mV are drawn with it
    allow_remote: bool = False
    max_clients: int = 8
    history: int = 200  # alarm events the page can list

    @property
    def unix_path(self) -> Path | None:
        return Path(self.listen[len("unix:"):]) if self.listen.startswith("unix:") else None

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def secret(self) -> str | None:
        """The control secret, read from ``token_file`` each call (a changed file takes effect).

        Under systemd the service cannot read the root-only file itself; the unit passes it as the
        credential ``display-token`` (``LoadCredential=``), which is read instead when present."""
        if self.pin:
            return self.pin
        if self.token_file is not None:
            cred = os.environ.get("CREDENTIALS_DIRECTORY")
            if cred and (Path(cred) / CREDENTIAL).is_file():
                return read_token(Path(cred) / CREDENTIAL, "display.token_file (systemd credential)")
            return read_token(self.token_file, "display.token_file")
        return None


def read_token(path: Path, where: str) -> str:
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}: {path}", f"cannot read the display secret ({exc.strerror or exc})") from None
    if st.st_mode & stat.S_IROTH:
        raise ConfigError(f"{where}: {path}", "is readable by everyone; the secret file must be mode 0600 or 0640")
    if len(text) < 4:
        raise ConfigError(f"{where}: {path}", "holds fewer than 4 characters; write a PIN or token of at least 4")
    return text


def parse_display(t: Any, base: Path, resolve: Callable[[Path, str], Path]) -> DisplayConfig:
    """``t`` is the config module's ``_Table`` for ``display.``; errors name file and key."""
    listen = t.string("listen", DisplayConfig.listen) or DisplayConfig.listen
    allow_remote = t.boolean("allow_remote", False)
    if listen.startswith("unix:"):
        path = resolve(base, listen[len("unix:"):])
        if len(os.fsencode(str(path))) >= 108:
            raise ConfigError(t.where("listen"), f"socket path {path} is longer than the 107 bytes AF_UNIX allows")
        listen = f"unix:{path}"
    else:
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError(t.where("listen"), f"{listen!r} is not HOST:PORT or unix:PATH (e.g. \"127.0.0.1:8080\")")
        try:
            ip = ipaddress.ip_address(host.strip("[]") if host != "localhost" else "127.0.0.1")
        except ValueError:
            raise ConfigError(t.where("listen"), f"{host!r} is not an IP address (use 127.0.0.1 or ::1)") from None
        if not ip.is_loopback and not allow_remote:
            raise ConfigError(t.where("listen"), f"{host} is not a loopback address; the bedside display stays on the unit (set allow_remote = true to serve other machines)")
    pin = t.string("pin", None)
    if pin is not None and len(pin.strip()) < 4:
        raise ConfigError(t.where("pin"), "must be at least 4 characters")
    token = t.string("token_file", None)
    token_file = resolve(base, token) if token else None
    if pin and token_file:
        raise ConfigError(t.where("token_file"), "set pin or token_file, not both")
    unlock_s = t.number("unlock_s", 60.0, positive=True)
    if unlock_s > 600:
        raise ConfigError(t.where("unlock_s"), f"{unlock_s} s is too long (allowed: up to 600 s)")
    return DisplayConfig(
        enabled=t.boolean("enabled", True),
        listen=listen,
        pin=pin.strip() if pin else None,
        token_file=token_file,
        unlock_s=float(unlock_s),
        px_per_mm=float(t.number("px_per_mm", CSS_PX_PER_MM, positive=True)),
        allow_remote=allow_remote,
        max_clients=t.number("max_clients", 8, positive=True, integer=True),
        history=t.number("history", 200, positive=True, integer=True),
    )


def parse_audio(t: Any) -> SoundConfig:
    """``t`` is the config module's ``_Table`` for ``audio.``."""
    level = t.number("level_dbfs", -6.0)
    if not -40.0 <= level <= 0.0:
        raise ConfigError(t.where("level_dbfs"), f"must be in [-40, 0] dBFS, got {level}")
    return SoundConfig(
        enabled=t.boolean("enabled", True),
        device=t.string("device", "default") or "default",
        level_dbfs=float(level),
        probe_s=float(t.number("probe_s", 60.0, positive=True)),
    )
