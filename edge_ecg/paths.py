"""Where an installed unit keeps things: one place, so the .deb, the CLI and the daemon agree.

The release builder (``release/``) fills the maintainer scripts from ``DEFAULT``; the unit file and
the default config name the same paths, and ``tests/test_release_paths.py`` holds them equal. On a
unit every path can be moved by one environment variable (a test bench that installs elsewhere,
a test that works in a temporary folder), never by editing code:

=========================  =================================  ================================
path                       default                            environment variable
=========================  =================================  ================================
install prefix             ``/opt/edge-ecg``                  ``EDGE_ECG_PREFIX``
daemon config              ``/etc/edge-ecg/edge-ecg.toml``    ``EDGE_ECG_CONFIG``
trusted signing keys       ``/etc/edge-ecg/trusted.d``        ``EDGE_ECG_TRUST_DIR``
bundle store (A/B slots)   ``/var/opt/edge-ecg/bundles``      ``EDGE_ECG_BUNDLE_STORE``
daemon state               ``/var/lib/edge-ecg``              ``EDGE_ECG_STATE_DIR``
systemd unit               ``edge-ecg.service``               ``EDGE_ECG_UNIT``
=========================  =================================  ================================

The bundle store is outside the daemon's ``StateDirectory=`` on purpose: systemd would hand that
folder to the daemon's user, and the daemon must never be able to rewrite the models it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["InstallPaths", "DEFAULT", "install_paths"]


@dataclass(frozen=True)
class InstallPaths:
    prefix: Path
    config: Path
    trust_dir: Path
    bundle_store: Path
    state_dir: Path
    unit: str
    user: str = "edge-ecg"

    @property
    def venv(self) -> Path:
        return self.prefix / "venv"

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "edge-ecg"

    @property
    def wheelhouse(self) -> Path:
        return self.prefix / "wheels"

    @property
    def shipped_bundles(self) -> Path:
        """The bundles the package ships (read-only, owned by dpkg); ``postinst`` installs them into the store."""
        return self.prefix / "share" / "bundles"

    @property
    def build_info(self) -> Path:
        return self.prefix / "build-info.json"

    def as_substitutions(self) -> dict[str, str]:
        """``@NAME@`` placeholders of the maintainer-script templates."""
        return {
            "PREFIX": str(self.prefix), "CONFIG": str(self.config), "CONFIG_DIR": str(self.config.parent),
            "TRUST_DIR": str(self.trust_dir), "BUNDLE_STORE": str(self.bundle_store),
            "STATE_DIR": str(self.state_dir), "UNIT": self.unit, "USER": self.user,
            "VENV": str(self.venv), "EXECUTABLE": str(self.executable), "WHEELHOUSE": str(self.wheelhouse),
            "SHIPPED_BUNDLES": str(self.shipped_bundles), "BUILD_INFO": str(self.build_info),
        }


DEFAULT = InstallPaths(
    prefix=Path("/opt/edge-ecg"),
    config=Path("/etc/edge-ecg/edge-ecg.toml"),
    trust_dir=Path("/etc/edge-ecg/trusted.d"),
    bundle_store=Path("/var/opt/edge-ecg/bundles"),
    state_dir=Path("/var/lib/edge-ecg"),
    unit="edge-ecg.service",
)


def install_paths(env: Mapping[str, str] | None = None) -> InstallPaths:
    """``DEFAULT`` with any ``EDGE_ECG_*`` overrides from the environment applied."""
    env = os.environ if env is None else env

    def path(var: str, default: Path) -> Path:
        value = env.get(var)
        return Path(value) if value else default

    return InstallPaths(
        prefix=path("EDGE_ECG_PREFIX", DEFAULT.prefix),
        config=path("EDGE_ECG_CONFIG", DEFAULT.config),
        trust_dir=path("EDGE_ECG_TRUST_DIR", DEFAULT.trust_dir),
        bundle_store=path("EDGE_ECG_BUNDLE_STORE", DEFAULT.bundle_store),
        state_dir=path("EDGE_ECG_STATE_DIR", DEFAULT.state_dir),
        unit=env.get("EDGE_ECG_UNIT") or DEFAULT.unit,
    )
