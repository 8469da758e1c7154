"""ECG records: one value type (``Record``) and readers for the formats carts and databases use."""

from __future__ import annotations

from pathlib import Path

from edge_ecg.errors import RecordError
from edge_ecg.records.leads import STANDARD_12, canonical_lead, derive_limb_leads
from edge_ecg.records.record import Record
from edge_ecg.records.wfdb_format import read_wfdb

__all__ = ["Record", "RecordError", "read_record", "read_wfdb", "canonical_lead", "derive_limb_leads", "STANDARD_12"]


def read_record(path: str | Path) -> Record:
    """Read any supported ECG file, choosing the reader by extension (and content where needed)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".hea", ".dat", ".mat", ""):
        return read_wfdb(path)
    raise RecordError(path, f"unknown ECG format {suffix!r} (known: .hea/.dat/.mat WFDB)")
