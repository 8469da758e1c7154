"""ECG records: one value type (``Record``), readers and writers for the formats carts and databases use.

| format | read | write | by extension |
|---|---|---|---|
| WFDB (``.hea`` + ``.dat``/``.mat``) | ``read_wfdb`` (wfdb) | - | ``.hea`` ``.dat`` ``.mat`` or none |
| EDF / EDF+C | ``read_edf`` (edfio) | ``write_edf`` | ``.edf`` |
| HL7 aECG XML | ``read_aecg`` (xml.etree) | ``write_aecg`` | ``.xml`` |
| CSV (header convention in ``csv_format``) | ``read_csv`` | ``write_csv`` | ``.csv`` ``.txt`` |
| DICOM waveform, SCP-ECG, MFER, ISHNE, Sierra XML, GE MUSE XML, Mortara XML, Kardia JSON | ``read_vendor`` (ecgdatakit) | - | by content |

``read_record`` chooses the reader from the file's content (``detect_format``), not only its name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from edge_ecg.errors import RecordError
from edge_ecg.records.aecg_format import looks_like_aecg, read_aecg, write_aecg
from edge_ecg.records.checks import check_file, check_record
from edge_ecg.records.csv_format import looks_like_csv_record, read_csv, write_csv
from edge_ecg.records.edf_format import read_edf, write_edf
from edge_ecg.records.leads import STANDARD_12, canonical_lead, derive_limb_leads
from edge_ecg.records.record import Record
from edge_ecg.records.identity import PATIENT_KEY, anonymize, identifiers
from edge_ecg.records.resampling import ensure_12_leads, resample
from edge_ecg.records.vendor_format import VENDOR_SUFFIXES, read_vendor, vendor_format
from edge_ecg.records.wfdb_format import read_wfdb

__all__ = [
    "Record", "RecordError", "read_record", "write_record", "find_records", "read_wfdb", "read_edf", "write_edf",
    "read_aecg", "write_aecg", "read_csv", "write_csv", "resample", "ensure_12_leads", "canonical_lead",
    "derive_limb_leads", "STANDARD_12", "READERS", "WRITERS", "detect_format", "read_vendor", "anonymize",
    "identifiers", "PATIENT_KEY",
]

WFDB_SUFFIXES = (".hea", ".dat", ".mat", "")
READERS = {".edf": read_edf, ".xml": read_aecg, ".csv": read_csv, ".txt": read_csv}
WRITERS = {".edf": write_edf, ".xml": write_aecg, ".csv": write_csv}


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """Which reader ``path`` needs, from its content (and its name for WFDB's header/signal pair).

    ``wfdb``, ``edf`` (starts with the EDF version field), ``hl7-aecg`` (an AnnotatedECG
    element near the start), ``csv`` (``.csv``/``.txt``), ``vendor`` (ecgdatakit recognises it:
    DICOM, SCP-ECG, MFER, ISHNE, Sierra/MUSE/Mortara XML, Kardia JSON), or None.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".hea" or (suffix in (".dat", ".mat") and path.with_suffix(".hea").is_file()):
        return "wfdb"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    if head.startswith(b"0       "):
        return "edf"
    if b"AnnotatedECG" in head[:2048]:
        return "hl7-aecg"
    if suffix in (".csv", ".txt"):
        return "csv"
    if head and vendor_format(path):
        return "vendor"
    if not suffix and path.with_suffix(".hea").is_file():
        return "wfdb"
    return None


_BY_FORMAT = {"edf": read_edf, "hl7-aecg": read_aecg, "csv": read_csv, "vendor": read_vendor}


def read_record(path: str | os.PathLike[str]) -> Record:
    """Read any supported ECG file, choosing the reader by content (see ``detect_format``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = detect_format(path) if path.is_file() else None
    if fmt in _BY_FORMAT:
        return _BY_FORMAT[fmt](path)
    if fmt is None and suffix in READERS:  # missing, empty or foreign: the format's own reader says which
        return READERS[suffix](path)
    if fmt is None and suffix not in WFDB_SUFFIXES:
        if path.is_file() and os.path.getsize(path) == 0:
            raise RecordError(path, "empty file")
        if not path.exists():
            raise RecordError(path, "no such file")
        raise RecordError(path, f"unknown ECG format {suffix!r}: the content is none of WFDB, EDF, HL7 aECG, CSV, "
                                "DICOM waveform, SCP-ECG, MFER, ISHNE, Philips Sierra XML, GE MUSE XML, Mortara XML")
    hea = (path.with_suffix("") if suffix in WFDB_SUFFIXES and suffix else path).with_suffix(".hea")
    if hea.is_file() and os.path.getsize(hea) == 0:
        raise RecordError(hea, "empty file")
    return check_record(read_wfdb(path), hea)


def write_record(record: Record, path: str | os.PathLike[str]) -> Path:
    """Write ``record`` in the format its extension names (.edf, .xml HL7 aECG, .csv)."""
    path = Path(path)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise RecordError(path, f"cannot write format {path.suffix!r} (known: {', '.join(WRITERS)})")
    return writer(record, path)


def _is_record_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".hea", ".edf"):
        return True
    if suffix in (".csv", ".txt"):
        return looks_like_csv_record(path)
    if suffix in VENDOR_SUFFIXES:  # .xml (aECG or a vendor's), .dcm, .scp, ..., or no suffix (DICOM folders)
        if suffix == "" and path.with_suffix(".hea").is_file():
            return False  # a WFDB record's extensionless companion
        return detect_format(path) in ("hl7-aecg", "vendor")
    return False


def find_records(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[Path]:
    """Every ECG record under ``paths`` (files or folders, recursively), one entry per record.

    A WFDB record is its ``.hea`` (its ``.dat``/``.mat``/annotation files are not listed again);
    ``.xml`` counts only if it is an HL7 AnnotatedECG and ``.csv`` only if it follows the
    header convention, so label tables (``alarms.csv``, ``ludb.csv``) are not taken for ECGs.
    A named file is taken as given (its reader will say if it is not a record); a named path
    that does not exist is an error.
    """
    if isinstance(paths, (str, os.PathLike)):  # one path given bare: not an iterable of characters
        paths = [paths]
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and _is_record_file(child):
                    found[child] = None
        elif path.is_file():
            if path.suffix.lower() in (".dat", ".mat") and path.with_suffix(".hea").is_file():
                path = path.with_suffix(".hea")
            found[path] = None
        elif path.with_suffix(".hea").is_file():  # a WFDB record named without extension
            found[path.with_suffix(".hea")] = None
        else:
            raise RecordError(path, "no such file or folder")
    return list(found)
