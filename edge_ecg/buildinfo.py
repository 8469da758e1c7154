"""Which build this is: the version and build id a fleet needs in every first log line and report.

An installed release carries ``build-info.json`` in its prefix (written by ``make release``: version,
build id, commit, target, the wheelhouse lock hashes, the bundles it shipped and the key that
signed them). A source checkout reports its git commit instead, so a developer's log is never
mistaken for a release's. ``version_report`` is what ``edge-ecg --version`` prints: package,
bundle and engine versions in one screen.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_ecg import __version__
from edge_ecg.paths import InstallPaths, install_paths

__all__ = ["BuildInfo", "build_info", "version_report", "runtime_versions"]

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BuildInfo:
    version: str
    build_id: str
    source: str  # "release" (installed .deb), "checkout" (git), "unknown"
    commit: str | None = None
    built_at: str | None = None
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        where = f"{self.source}" + (f" {self.target}" if self.target else "")
        return f"edge-ecg {self.version} build {self.build_id} ({where})"


def _git_build() -> BuildInfo | None:
    repo = _PACKAGE_DIR.parent
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=8", "--match", "v*"],
                             capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    desc = out.stdout.strip()
    return BuildInfo(__version__, f"{__version__}+g{desc}", "checkout", commit=desc.replace("-dirty", ""))


@functools.lru_cache(maxsize=4)
def _cached(prefix: Path, build_file: Path) -> BuildInfo:
    if build_file.is_file() and prefix.resolve() in _PACKAGE_DIR.parents:
        try:
            data = json.loads(build_file.read_text())
            return BuildInfo(str(data.get("version", __version__)), str(data.get("build_id", "?")), "release",
                             commit=data.get("commit"), built_at=data.get("built_at"), target=data.get("target"), extra=data)
        except (OSError, ValueError):
            pass
    return _git_build() or BuildInfo(__version__, f"{__version__}+unknown", "unknown")


def build_info(paths: InstallPaths | None = None) -> BuildInfo:
    """The release's build-info when this code runs from an installed prefix, else the git checkout's."""
    paths = paths or install_paths()
    return _cached(paths.prefix, paths.build_info)


def runtime_versions() -> dict[str, str]:
    """Python, ONNX Runtime, TensorRT (when importable): the runtimes a unit classifies with."""
    import importlib.metadata as md
    import importlib.util

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in ("onnxruntime", "numpy", "cryptography"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    if importlib.util.find_spec("tensorrt") is not None:
        try:
            import tensorrt

            out["tensorrt"] = str(tensorrt.__version__)
        except Exception as exc:  # present but broken (no driver): say so
            out["tensorrt"] = f"present but failed to import ({type(exc).__name__})"
    else:
        out["tensorrt"] = "not installed"
    return out


def _engines(bundle_root: Path) -> list[str]:
    out = []
    for plan in sorted((bundle_root / "engines").glob("*.plan")):
        meta_path = plan.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, ValueError):
            meta = {}
        out.append(f"{plan.name}" + (f" (TensorRT {meta['tensorrt']}, {meta.get('gpu', '?')})" if "tensorrt" in meta else ""))
    return out


def version_report(config: Path | None = None) -> list[str]:
    """``edge-ecg --version``: package and build, runtimes, and each configured bundle with its engines."""
    paths = install_paths()
    config = config or paths.config
    info = build_info(paths)
    rt = runtime_versions()
    lines = [info.line(), f"python {rt['python']} ({rt['machine']}), onnxruntime {rt['onnxruntime']}, tensorrt {rt['tensorrt']}"]
    if not config.is_file():
        lines.append(f"bundles: no config at {config} (set EDGE_ECG_CONFIG)")
        return lines
    try:
        from edge_ecg.bundle import load_bundle
        from edge_ecg.service.config import load_config

        cfg = load_config(config)
    except Exception as exc:  # --version must always answer
        lines.append(f"bundles: config {config} does not load: {exc}")
        return lines
    for b in cfg.bundles:
        try:
            bundle = load_bundle(b.path, verify=False, trust=cfg.trust)
            sig = bundle.signature.describe() if bundle.signature is not None else ""
            lines.append(f"bundle {bundle.name} {bundle.version} ({b.role}; {sig}) at {bundle.root}")
            engines = _engines(bundle.root)
            lines.append("  engines: " + (", ".join(engines) if engines else "none cached (ONNX Runtime, or TensorRT builds on first use)"))
        except Exception as exc:
            lines.append(f"bundle {b.path}: {exc}")
    return lines

