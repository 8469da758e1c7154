"""``[display]`` and ``[audio]`` of the daemon config, read by ``config_table.from_table`` like every table.

The display listens on loopback by default. ``listen`` is ``HOST:PORT`` (port 0 = any free port,
for tests and the demo) or ``unix:PATH``; a listening socket handed over by systemd
(``edge-ecg-display.socket``, ``FileDescriptorName=display``) is used instead when present, which
is how the page reaches a daemon that runs with ``PrivateNetwork=yes``. Control actions need the
secret: ``pin`` in the config, or ``token_file`` (for the service: a systemd credential, so the
file stays root-only). With neither, the page shows the buttons disabled.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge_ecg.config_table import bounds, from_table
from edge_ecg.errors import ConfigError
from edge_ecg.sound.sounder import SoundConfig

CREDENTIAL = "display-token"  # LoadCredential= name in systemd/edge-ecg.service
CSS_PX_PER_MM = 96 / 25.4  # the browser's idea of a millimetre; set px_per_mm for the real panel


@dataclass(frozen=True)
class DisplayConfig:
    enabled: bool = False
    listen: str = "127.0.0.1:8080"
    pin: str | None = None
    token_file: Path | None = None
    unlock_s: float = field(default=60.0, metadata=bounds(positive=True, maximum=600.0))  # an entered secret is kept this long
    px_per_mm: float = field(default=CSS_PX_PER_MM, metadata=bounds(positive=True))  # screen px per mm: 25 mm/s, 10 mm/mV drawn with it
    allow_remote: bool = False
    max_clients: int = field(default=8, metadata=bounds(positive=True))
    history: int = field(default=200, metadata=bounds(positive=True))  # alarm events the page can list

    def validate(self, where: str) -> None:
        """The listen address is loopback unless ``allow_remote``; one secret, at least 4 characters."""
        if not self.listen.startswith("unix:"):
            host, sep, port = self.listen.rpartition(":")
            if not sep or not port.isdigit() or int(port) > 65535:
                raise ConfigError(f"{where}.listen", f"{self.listen!r} is not HOST:PORT or unix:PATH (e.g. \"127.0.0.1:8080\")")
            try:
                ip = ipaddress.ip_address(host.strip("[]") if host != "localhost" else "127.0.0.1")
            except ValueError:
                raise ConfigError(f"{where}.listen", f"{host!r} is not an IP address (use 127.0.0.1 or ::1)") from None
            if not ip.is_loopback and not self.allow_remote:
                raise ConfigError(f"{where}.listen", f"{host} is not a loopback address; the bedside display stays on the unit "
                                                     "(set allow_remote = true to serve other machines)")
        if self.pin is not None and len(self.pin.strip()) < 4:
            raise ConfigError(f"{where}.pin", "must be at least 4 characters")
        if self.pin and self.token_file:
            raise ConfigError(f"{where}.token_file", "set pin or token_file, not both")

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


def parse_display(table: Any, where: str, base: Path) -> DisplayConfig:
    """``[display]`` (present means enabled unless ``enabled = false``); errors name file and key."""
    raw = {"enabled": True, **table} if isinstance(table, Mapping) else table
    cfg = from_table(DisplayConfig, raw, where, base=base)
    listen = cfg.listen
    if listen.startswith("unix:"):
        path = Path(os.path.expanduser(listen[len("unix:"):]))
        path = path if path.is_absolute() else base / path
        if len(os.fsencode(str(path))) >= 108:
            raise ConfigError(f"{where}.listen", f"socket path {path} is longer than the 107 bytes AF_UNIX allows")
        listen = f"unix:{path}"
    return dataclasses.replace(cfg, listen=listen, pin=cfg.pin.strip() if cfg.pin else None)


def parse_audio(table: Any, where: str) -> SoundConfig:
    """``[audio]`` (present means enabled unless ``enabled = false``)."""
    raw = {"enabled": True, **table} if isinstance(table, Mapping) else table
    return from_table(SoundConfig, raw, where)
