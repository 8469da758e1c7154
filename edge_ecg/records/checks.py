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


# Sampling rates a stored ECG can plausibly have: below 50 Hz a QRS complex (10-40 Hz content) is
# not representable at all, above 20 kHz is no ECG device (an implausible header, e.g. 1e9 Hz).
RATE_MIN_HZ = 50.0
RATE_MAX_HZ = 20000.0


def check_rate(fs: float, where: str | os.PathLike[str]) -> None:
    """A sampling rate outside 50 Hz-20 kHz is refused in words a clinic understands."""
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(where, f"sampling rate must be a positive number, got {fs!r}")
    if fs < RATE_MIN_HZ:
        raise RecordError(where, f"sampling rate {fs:g} Hz is below {RATE_MIN_HZ:g} Hz: too low to hold an ECG")
    if fs > RATE_MAX_HZ:
        raise RecordError(where, f"sampling rate {fs:g} Hz is above {RATE_MAX_HZ:g} Hz: no ECG device records at "
                                 "that rate (a damaged or foreign header?)")


def check_record(record: Record, where: str | os.PathLike[str]) -> Record:
    """No samples, a lead with no recorded sample at all (all NaN), or an implausible sampling rate
    means a broken file.

    A stream window may hold an all-NaN lead (electrode off); a stored record may not, because a
    lead that was never recorded should not be in the file.
    """
    check_rate(record.fs, where)
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


def lead_meta(meta: dict, renamed: dict[str, str]) -> dict:
    """``meta`` with the leads ``canonical_leads`` renamed (``ECG`` twice -> ``ECG1``, ``ECG2``) and a
    note saying so, so a reader of the record (or of a screening report) knows why."""
    if renamed:
        meta["renamed_leads"] = dict(renamed)
        notes = meta.setdefault("read_notes", [])
        olds = sorted(set(renamed.values()))
        notes.append(f"channels named alike ({', '.join(repr(o) for o in olds)}) read as {', '.join(renamed)}")
    return meta


def add_note(meta: dict, note: str) -> dict:
    """Append a reader's note (``meta["read_notes"]``): something about the file the reader
    worked around and a person should know (a header that disagrees with the file, an encoding)."""
    meta.setdefault("read_notes", []).append(note)
    return meta


def plain_words(exc: BaseException | str) -> str:
    """A library's error message without raw bytes or control characters, for a report.

    A junk file makes parsers echo what they read (``could not convert b'\\x00\\x9f...'``); a
    clinic needs the sentence, not the bytes: byte literals become "(unreadable bytes)", other
    non-printable characters are dropped, and the message is cut to 200 characters.
    """
    import re

    text = str(exc)
    text = re.sub(r"""b(['"])(?:\\.|(?!\1).)*\1""", "(unreadable bytes)", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > 200:
        text = text[:197] + "..."
    return text or type(exc).__name__
