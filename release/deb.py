"""Assemble one ``edge-ecg_<version>_<arch>.deb`` with ``dpkg-deb`` from the package wheel, the
wheelhouse of each Python the target carries, the signed bundles, the unit, udev rule and config.

Layout on the unit (paths from ``edge_ecg.paths.DEFAULT``)::

    /opt/edge-ecg/wheels/              every wheel + requirements-cpXY.txt (the lock + the package's own hash)
    /opt/edge-ecg/share/bundles/NAME/  signed bundles; postinst installs them into the bundle store
    /opt/edge-ecg/build-info.json      version, build id, commit, locks, bundles, signing key id
    /opt/edge-ecg/venv -> venv-BUILD   created by postinst (not in the package)
    /etc/edge-ecg/edge-ecg.toml        conffile (signatures required)
    /etc/edge-ecg/trusted.d/*.pub      conffiles: the public keys bundles must be signed with
    /lib/systemd/system/edge-ecg.service, edge-ecg-display.socket, /lib/udev/rules.d/99-edge-ecg-cart.rules
    /usr/lib/systemd/user/edge-ecg-kiosk.service   the display's kiosk page (enabled per desktop user)
    /etc/edge-ecg/display.token        made by postinst (a random PIN, root only), kept on upgrade
    /usr/bin/edge-ecg                  runs the venv's edge-ecg
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.paths import DEFAULT
from release.targets import REPO, Target, tag
from release.wheelhouse import read_lock, sha256

TEMPLATES = REPO / "release" / "debian"
MAINTAINER = "edge-ecg device team <devices@edge-ecg.invalid>"


@dataclass(frozen=True)
class BuildMeta:
    version: str
    build_id: str
    commit: str
    built_at: dt.datetime
    signer: str  # trusted key file stem
    key_id: str
    development_key: bool


def _rel(path: Path) -> str:
    return str(path).lstrip("/")


def _fill(text: str, subs: dict[str, str]) -> str:
    for k, v in subs.items():
        text = text.replace(f"@{k}@", v)
    if "@" in text.replace("edge-ecg.invalid", ""):
        import re

        left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
        if left:
            raise SystemExit(f"release: unfilled placeholders {left}")
    return text


def _put(root: Path, dest: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path = root / _rel(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    dst.chmod(0o644)


def _gz(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as f:
        f.write(text.encode())
    return buf.getvalue()


def manpage(meta: BuildMeta) -> str:
    """``edge-ecg(1)`` from the CLI's own parser (lintian wants a manual page for /usr/bin programs)."""
    import argparse

    from edge_ecg.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}

    def esc(s: str) -> str:
        return (s or "").replace("\\", "\\\\").replace("-", "\\-")

    lines = [f'.TH EDGE\\-ECG 1 "{meta.built_at:%Y-%m-%d}" "edge-ecg {meta.version}" "User Commands"',
             ".SH NAME", "edge\\-ecg \\- offline bedside ECG appliance: stream, HeartBEiT, alarms, signed bundle updates, self\\-test",
             ".SH SYNOPSIS", ".B edge\\-ecg", "[\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
             ".SH DESCRIPTION", esc(parser.description), ".PP", "Each command prints its options with \\fB\\-\\-help\\fR.",
             ".SH COMMANDS"]
    for name in sorted(sub.choices):
        lines += [".TP", f".B {esc(name)}", esc(helps.get(name, ""))]
    lines += [".SH FILES", ".TP", f".I {esc(str(DEFAULT.config))}", "daemon configuration (conffile)",
              ".TP", f".I {esc(str(DEFAULT.trust_dir))}", "public keys bundles must be signed with",
              ".TP", f".I {esc(str(DEFAULT.bundle_store))}", "installed bundle versions, active and previous slots",
              ".TP", f".I {esc(str(DEFAULT.state_dir))}", "event log and evidence",
              ".SH SEE ALSO", "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)", ""]
    return "\n".join(lines)


def copyright_text(bundle_attributions: list[str], year: int) -> str:
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            "Upstream-Name: edge-ecg\n\n"
            f"Files: *\nCopyright: {year} edge-ecg contributors\nLicense: Apache-2.0\n"
            " On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n\n"
            f"Files: opt/edge-ecg/wheels/*\nCopyright: {year} the authors of each wheel (see the METADATA inside it)\n"
            "License: various\n Each wheel carries its own license file in its .dist-info folder.\n")
    if bundle_attributions:
        text += (f"\nFiles: opt/edge-ecg/share/bundles/*\nCopyright: {year} edge-ecg contributors; training data as attributed below\n"
                 "License: Apache-2.0 and ODC-By-1.0\n")
        for a in bundle_attributions:
            for line in a.strip().splitlines():
                text += f" {line.strip() or '.'}\n"
    return text


def _changelog(meta: BuildMeta) -> str:
    return (f"edge-ecg ({meta.version}) stable; urgency=medium\n\n  * Release build {meta.build_id} (commit {meta.commit}).\n\n"
            f" -- {MAINTAINER}  {meta.built_at.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n")


def assemble(target: Target, stage: Path, package_wheel: Path, wheelhouses: dict[str, Path], bundles: list[Path],
             trusted_keys: list[Path], meta: BuildMeta) -> Path:
    """Lay out the package tree in ``stage`` (DEBIAN/ included); returns ``stage``."""
    from edge_ecg.bundle import load_bundle

    paths = DEFAULT
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    wheels = stage / _rel(paths.wheelhouse)
    # the wheelhouse: every Python's wheels in one folder (pure wheels are shared), one requirements file each
    _link_or_copy(package_wheel, wheels / package_wheel.name)
    pkg_line = f"edge-ecg=={meta.version} --hash=sha256:{sha256(package_wheel)}  # {package_wheel.name}"
    locks = {}
    for python, folder in wheelhouses.items():
        lock = target.lock(python)
        for pin in read_lock(lock):
            _link_or_copy(folder / pin.filename, wheels / pin.filename)
        locks[tag(python)] = hashlib.sha256(lock.read_bytes()).hexdigest()
        _put(stage, paths.wheelhouse / f"requirements-{tag(python)}.txt", lock.read_text() + pkg_line + "\n")
    # bundles (already signed)
    shipped, attributions = [], []
    for b in bundles:
        bundle = load_bundle(b)
        dest = stage / _rel(paths.shipped_bundles) / bundle.name
        dest.mkdir(parents=True)
        for name in ["bundle.toml", "bundle.sig", *bundle.files]:
            shutil.copy2(b / name, dest / name)
            (dest / name).chmod(0o644)
        shipped.append({"name": bundle.name, "version": bundle.version, "manifest_sha256": sha256(b / "bundle.toml")})
        att = bundle.provenance.get("attribution")
        if isinstance(att, str) and att not in attributions:
            attributions.append(att)
    # configuration, keys, service, udev
    _put(stage, paths.config, (REPO / "systemd" / "edge-ecg.toml").read_text())
    for key in trusted_keys:
        _put(stage, paths.trust_dir / key.name, key.read_bytes())
    _put(stage, Path("/lib/systemd/system") / paths.unit, (REPO / "systemd" / "edge-ecg.service").read_text())
    _put(stage, Path("/lib/udev/rules.d/99-edge-ecg-cart.rules"), (REPO / "systemd" / "99-edge-ecg-cart.rules").read_text())
    # the bedside display's socket (the unit's Sockets=) and the kiosk page, a user unit (docs/display.md)
    _put(stage, Path("/lib/systemd/system/edge-ecg-bundles.service"), (REPO / "systemd" / "edge-ecg-bundles.service").read_text())
    _put(stage, Path("/lib/systemd/system/edge-ecg-display.socket"), (REPO / "systemd" / "edge-ecg-display.socket").read_text())
    _put(stage, Path("/usr/lib/systemd/user/edge-ecg-kiosk.service"), (REPO / "systemd" / "edge-ecg-kiosk.service").read_text())
    subs = {**paths.as_substitutions(), "VERSION": meta.version, "ARCH": target.name, "BUILD_ID": meta.build_id,
            "BUILD_SLUG": meta.build_id.replace("+", "-").replace("/", "-"), "WHAT": target.what}
    _put(stage, Path("/usr/bin/edge-ecg"), _fill((TEMPLATES / "edge-ecg.wrapper").read_text(), subs), 0o755)
    doc = Path("/usr/share/doc/edge-ecg")
    _put(stage, doc / "copyright", copyright_text(attributions, meta.built_at.year))
    _put(stage, doc / "changelog.gz", _gz(_changelog(meta)))  # a native package: changelog.gz
    _put(stage, Path("/usr/share/man/man1/edge-ecg.1.gz"), _gz(manpage(meta)))
    _put(stage, Path("/usr/share/lintian/overrides/edge-ecg"), (TEMPLATES / "lintian-overrides.in").read_text())
    info = {"package": "edge-ecg", "version": meta.version, "build_id": meta.build_id, "commit": meta.commit,
            "built_at": meta.built_at.isoformat(), "target": target.name, "machine": target.machine,
            "python_tags": [tag(p) for p in wheelhouses], "locks_sha256": locks, "bundles": shipped,
            "signing_key": {"name": meta.signer, "key_id": meta.key_id, "development": meta.development_key}}
    _put(stage, paths.build_info, json.dumps(info, indent=2) + "\n")
    # control files
    size_kib = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file()) // 1024 + 1
    lo, hi = target.python_range()
    control = _fill((TEMPLATES / "control.in").read_text(), {**subs, "INSTALLED_SIZE": str(size_kib), "PY_MIN": lo, "PY_MAX": hi})
    _put(stage, Path("/DEBIAN/control"), control)
    conffiles = [str(paths.config)] + [str(paths.trust_dir / k.name) for k in trusted_keys]
    _put(stage, Path("/DEBIAN/conffiles"), "\n".join(conffiles) + "\n")
    for script in ("postinst", "prerm", "postrm"):
        _put(stage, Path("/DEBIAN") / script, _fill((TEMPLATES / f"{script}.in").read_text(), subs), 0o755)
    md5 = []
    for f in sorted(p for p in stage.rglob("*") if p.is_file() and not p.relative_to(stage).parts[0] == "DEBIAN"):
        md5.append(f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.relative_to(stage)}")
    _put(stage, Path("/DEBIAN/md5sums"), "\n".join(md5) + "\n")
    for d in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    _no_private_keys(stage)
    return stage


def _no_private_keys(stage: Path) -> None:
    """The package must never carry a private key (the signing key stays at the factory)."""
    for f in stage.rglob("*"):
        if f.is_file() and f.suffix not in (".whl", ".onnx", ".npz", ".gz") and b"PRIVATE KEY" in f.read_bytes():
            raise SystemExit(f"release: {f.relative_to(stage)} holds a private key; refusing to package it")


def build_deb(stage: Path, out: Path) -> Path:
    """``dpkg-deb --build``, owned by root. gzip level 1: the payload is mostly wheels and ONNX
    weights, which do not compress further, so a higher level only costs build time."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    res = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(stage), str(tmp)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"dpkg-deb failed: {res.stderr}")
    os.replace(tmp, out)
    return out


def lintian(deb: Path) -> subprocess.CompletedProcess:
    """lintian with its overrides, failing on errors and warnings."""
    return subprocess.run(["lintian", "--fail-on", "error,warning", "--no-tag-display-limit", str(deb)], capture_output=True, text=True)
