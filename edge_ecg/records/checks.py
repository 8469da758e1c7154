"""Checks every reader applies before a record leaves it, so bad files fail at the door."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.record import Record


def check_file(path: Path) -> None:
    """A missing, non-regular or empty file is an error that names it."""
    if not path.exists():
        raise RecordError(path, "no such file")
    if not path.is_file():
        raise RecordError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise RecordError(path, "empty file")


def check_record(record: Record, where: str | os.PathLike[str]) -> Record:
    """No samples, or a lead with no recorded sample at all (all NaN), means a broken file.

    A stream window may hold an all-NaN lead (electrode off); a stored record may not, because a
    lead that was never recorded should not be in the file.
    """
    if record.n_samples == 0:
        raise RecordError(where, "record has no samples")
    empty = [lead for lead, ok in zip(record.leads, np.isfinite(record.signals).any(axis=0)) if not ok]
    if empty:
        raise RecordError(where, f"lead(s) {', '.join(empty)} hold no valid sample (all NaN)")
    return record


def unit_factor(unit: str) -> float | None:
    """Factor from a voltage unit (uV, mV, V, with the usual spellings) to microvolts; None if not a voltage."""
    u = unit.strip().replace("μ", "u").replace("µ", "u").lower()
    return {"uv": 1.0, "microvolt": 1.0, "microvolts": 1.0, "mv": 1000.0, "millivolt": 1000.0,
            "millivolts": 1000.0, "v": 1e6, "volt": 1e6, "volts": 1e6, "nv": 1e-3}.get(u)
