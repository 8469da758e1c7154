"""Shared fixtures: where the real ECG data lives, and skipping cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI and developers have ../shared beside the checkout; EDGE_ECG_SHARED overrides it.
SHARED = Path(os.environ.get("EDGE_ECG_SHARED", REPO.parent / "shared"))
ECG = SHARED / "ecg"


def shared_ecg_dir(name: str = "") -> Path:
    """A folder of ../shared/ecg, or a pytest skip naming what is missing."""
    path = ECG / name if name else ECG
    if not path.is_dir():
        pytest.skip(f"real ECG data not present at {path} (../shared/ecg beside the checkout)")
    return path


@pytest.fixture(scope="session")
def ecg_root() -> Path:
    return shared_ecg_dir()


@pytest.fixture(scope="session")
def mitdb_dir() -> Path:
    return shared_ecg_dir("mitdb-ds1")


@pytest.fixture(scope="session")
def ludb_dir() -> Path:
    return shared_ecg_dir("ludb")


@pytest.fixture(scope="session")
def cinc_vt_dir() -> Path:
    return shared_ecg_dir("cinc2015-vt")


@pytest.fixture(scope="session")
def noise_stress_dir() -> Path:
    return shared_ecg_dir("noise-stress")


@pytest.fixture(scope="session")
def misc_dir() -> Path:
    return shared_ecg_dir("misc")


@pytest.fixture(scope="session")
def tiny_screen_bundle(tmp_path_factory, ludb_dir) -> Path:
    """The tiny untrained HeartBEiT screening bundle of ``test_screen_cli`` (built once per session:
    the screening test modules share it)."""
    from helpers.screening import build_tiny_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny-screen-test"
    build_tiny_bundle(out, ludb_dir)
    return out


# Fixtures shared across modules live in tests/helpers/ and are registered here.
from helpers.model_artifacts import arts  # noqa: E402,F401  (session fixture: a tiny exported bundle)
