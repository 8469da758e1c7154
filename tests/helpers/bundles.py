"""Copies of the committed bundles, for tests that sign, install or break one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO
from edge_ecg.bundle import load_bundle


SOURCE = REPO / "bundles" / "vt-triage"


def copy_bundle(dest: Path) -> Path:
    if not (SOURCE / "bundle.toml").is_file():
        pytest.skip("bundles/vt-triage is not in this checkout")
    b = load_bundle(SOURCE, verify=False)
    dest.mkdir(parents=True)
    for name in ["bundle.toml", *b.files]:
        shutil.copy(SOURCE / name, dest / name)
    return dest
