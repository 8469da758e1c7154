"""What each release package is for: the Debian architecture, the machine, the Pythons it carries wheels for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "release" / "locks"

# JetPack 6's pycuda and TensorRT Python bindings are compiled against NumPy 1.x, and a module
# compiled against NumPy 1.x does not import under NumPy 2. Every Python 3.10 wheelhouse (the
# Jetson's, and the amd64 one a bench on Ubuntu 22.04 uses) therefore pins NumPy 1.x, so benches
# run exactly the Jetson's versions.
CONSTRAINTS = {"3.10": ("numpy<2",)}


@dataclass(frozen=True)
class Target:
    name: str  # the Debian architecture
    machine: str  # the wheel platform's machine
    pythons: tuple[str, ...]
    what: str
    glibc_minor: int = 35  # manylinux_2_35 and older: Ubuntu 22.04 (JetPack 6) has glibc 2.35

    def platforms(self) -> list[str]:
        """pip's ``--platform`` values: every manylinux tag this target's glibc runs (pip does not expand them itself)."""
        return [f"manylinux_2_{m}_{self.machine}" for m in range(self.glibc_minor, 16, -1)] + [f"manylinux2014_{self.machine}"]

    def lock(self, python: str) -> Path:
        return LOCKS / f"{self.name}-{tag(python)}.txt"

    def python_range(self) -> tuple[str, str]:
        """(lowest, one past the highest) for the package's ``Depends: python3`` bounds."""
        lo, hi = self.pythons[0], self.pythons[-1]
        major, minor = hi.split(".")
        return lo, f"{major}.{int(minor) + 1}"


def tag(python: str) -> str:
    return "cp" + python.replace(".", "")


TARGETS = {
    "arm64": Target("arm64", "aarch64", ("3.10",), "NVIDIA Jetson with JetPack 6 (Ubuntu 22.04, Python 3.10)"),
    # Ubuntu 22.04 (3.10), Debian 12 (3.11), Ubuntu 24.04 (3.12): each Python adds ~120 MB of wheels
    "amd64": Target("amd64", "x86_64", ("3.10", "3.11", "3.12"), "x86-64 test benches (Ubuntu 22.04/24.04, Debian 12)"),
}
