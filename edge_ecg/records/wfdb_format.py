"""WFDB records (``.hea`` with ``.dat`` or ``.mat`` signal files) through the ``wfdb`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.checks import lead_meta
from edge_ecg.records.leads import canonical_leads
from edge_ecg.records.record import Record

# Physical units WFDB headers use for ECG channels, as a factor to microvolts.
_UNIT_TO_UV = {"mv": 1000.0, "uv": 1.0, "µv": 1.0, "v": 1e6, "nu": None, "": 1000.0}


# Bytes per sample of the WFDB signal formats (wfdb's own table, spelled out for the size check).
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3, "311": 4 / 3}


def _check_signal_files(hea: Path) -> None:
    """Name a missing or truncated signal file precisely (wfdb's own error is a numpy reshape)."""
    import wfdb

    try:
        header = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as exc:
        raise RecordError(hea, f"bad WFDB header: {exc}") from exc
    need: dict[str, float] = {}
    offsets: dict[str, int] = {}
    for name, fmt, offset in zip(header.file_name or [], header.fmt or [], header.byte_offset or [None] * len(header.file_name or [])):
        need[name] = need.get(name, 0.0) + _BYTES_PER_SAMPLE.get(str(fmt), 0.0) * (header.sig_len or 0)
        offsets[name] = int(offset or 0)
    for name, size in need.items():
        path = hea.parent / name
        if not path.is_file():
            raise RecordError(path, f"signal file named in {hea.name} is missing")
        have = path.stat().st_size - offsets[name]
        if have < int(size):
            raise RecordError(path, f"signal file is truncated: {have} bytes of samples, header {hea.name} needs {int(size)}")


def read_wfdb(path: str | Path) -> Record:
    """Read the ECG channels of a WFDB record; ``path`` may name the ``.hea`` or omit the extension.

    Channels whose unit is not a voltage (PLETH, ABP, RESP in "NU" or mmHg) are not ECG and go to
    ``meta["other_signals"]`` rather than into ``signals``.
    """
    import wfdb  # heavy import (pandas, matplotlib): only when a WFDB record is read

    path = Path(path)
    base = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat", ".mat") else path
    hea = base.with_suffix(".hea")
    if not hea.is_file():
        raise RecordError(hea, "no such WFDB header file")
    try:
        rec = wfdb.rdrecord(str(base), physical=True)
    except Exception as exc:  # wfdb raises many types; the caller needs file + cause
        _check_signal_files(hea)
        raise RecordError(hea, f"cannot read WFDB record: {exc}") from exc
    if not rec.fs or rec.fs <= 0:
        raise RecordError(hea, f"sampling rate must be positive, got {rec.fs!r}")
    if rec.p_signal is None or rec.p_signal.shape[0] == 0:
        raise RecordError(hea, "record has no samples")
    ecg_cols, raw_names, other = [], [], {}
    for col, (name, unit) in enumerate(zip(rec.sig_name, rec.units)):
        factor = _UNIT_TO_UV.get((unit or "").strip().lower())
        if factor is None or name.strip().upper() in ("PLETH", "ABP", "RESP", "ART", "CVP", "PAP"):
            other[name] = rec.p_signal[:, col].astype(np.float32)
            continue
        ecg_cols.append((col, factor))
        raw_names.append(name)
    if not ecg_cols:
        raise RecordError(hea, f"no ECG channels (channels: {', '.join(rec.sig_name)})")
    names, renamed = canonical_leads(raw_names, hea)
    signals = np.empty((rec.p_signal.shape[0], len(ecg_cols)), dtype=np.float32)
    for j, (col, factor) in enumerate(ecg_cols):
        signals[:, j] = rec.p_signal[:, col] * factor
    start = None
    if rec.base_date is not None and rec.base_time is not None:
        import datetime as dt

        start = dt.datetime.combine(rec.base_date, rec.base_time)
    meta = lead_meta({"format": "wfdb", "comments": list(rec.comments or []), "original_leads": list(rec.sig_name)}, renamed)
    if other:
        meta["other_signals"] = other
    return Record(signals=signals, fs=float(rec.fs), leads=tuple(names), name=base.name, source=str(hea), start_time=start, meta=meta)
