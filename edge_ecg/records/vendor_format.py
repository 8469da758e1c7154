"""Vendor ECG formats through ``ecgdatakit`` (PyPI, Apache-2.0, pure Python).

Carts export what their maker chose: Philips PageWriter Sierra XML (often XLI-compressed), GE
MUSE XML, DICOM 12-lead waveform, SCP-ECG, MFER, ISHNE Holter, Mortara ELI XML, AliveCor Kardia
JSON. ``ecgdatakit`` parses each of them, detecting the format from the file's content, into one
``ECGRecord``; this module turns that into our ``Record`` (microvolts, canonical leads, start
time) and keeps what it says about the patient only under ``meta["patient"]`` (see
``edge_ecg.records.identity``), so the rest of the metadata is patient-free.

WFDB, EDF and CSV stay with their own readers (``wfdb``, ``edfio``, stdlib csv: their checks for
truncation and gaps are stricter), and so does HL7 aECG: on every aECG file the tests hold, ours
refuses what ``ecgdatakit`` accepts silently (a file declaring a DTD, leads of unequal length)
and both read the same samples otherwise (``tests/test_records_vendor.py``).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.checks import add_note, check_file, check_record, lead_meta, plain_words
from edge_ecg.records.identity import PATIENT_KEY
from edge_ecg.records.leads import canonical_leads
from edge_ecg.records.record import Record

# Suffixes vendor exports carry; a file without a suffix (DICOM folders: IM000001) is sniffed too.
VENDOR_SUFFIXES = (".dcm", ".dicom", ".scp", ".ecg", ".mwf", ".mfer", ".mfr", ".xml", ".json", "")
# Parsers ecgdatakit marks experimental (EDAN ARC, XLE): not offered until they are validated.
_EXPERIMENTAL = ("EDANARCHolterParser", "XLEParser")
# Parsers we do not use, because our own reader of that format is stricter
_OURS = ("WFDBParser", "EDFParser", "HL7aECGParser")


def _ecgdatakit(path: Path):
    try:
        import ecgdatakit
    except ImportError as exc:  # a runtime dependency (pyproject); say what to install
        raise RecordError(path, "vendor ECG formats need the 'ecgdatakit' package (pip install ecgdatakit)") from exc
    return ecgdatakit


def vendor_format(path: str | Path) -> str | None:
    """The ecgdatakit parser that recognises ``path`` by content (e.g. ``DICOMWaveformParser``),
    or None: not a vendor format, an experimental one, or one we read ourselves."""
    path = Path(path)
    try:
        from ecgdatakit import FileParser
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = FileParser.detect_format(path)
    except Exception:  # unreadable file: the reader will say why
        return None
    if not found or found["parser"] in _EXPERIMENTAL or found["parser"] in _OURS:
        return None
    return str(found["parser"])


def read_vendor(path: str | Path) -> Record:
    """Read a vendor ECG file (see module doc) as a ``Record`` in microvolts."""
    path = Path(path)
    check_file(path)
    edk = _ecgdatakit(path)
    parser = vendor_format(path)
    if parser is None:
        raise RecordError(path, "unknown ECG format: the content is none of WFDB, EDF, HL7 aECG, CSV, DICOM waveform, "
                                "SCP-ECG, MFER, ISHNE, Philips Sierra XML, GE MUSE XML, Mortara XML")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ecg = edk.FileParser.parse(path, auto_scale=True, units="uV")
    except ImportError as exc:  # DICOM needs pydicom
        raise RecordError(path, f"cannot read {parser}: missing package ({exc.name or exc})") from exc
    except Exception as exc:  # ecgdatakit's CorruptedFileError, MissingElementError, ...
        raise RecordError(path, f"cannot read {_format_name(parser)}: {plain_words(exc)}") from exc
    return _to_record(ecg, path, parser, [plain_words(w.message) for w in caught])


def _format_name(parser: str) -> str:
    return parser.replace("Parser", "").replace("DICOMWaveform", "DICOM waveform").replace("SCPECG", "SCP-ECG")


def _to_record(ecg, path: Path, parser: str, warned: list[str]) -> Record:
    leads = list(ecg.leads)
    if not leads:
        raise RecordError(path, f"cannot read {_format_name(parser)}: the file holds no leads")
    raw = [lead.label for lead in leads if lead.is_raw or str(lead.units).lower() not in ("uv", "µv", "μv")]
    if raw:
        raise RecordError(path, f"leads {', '.join(raw)} have no voltage scale in the file (raw ADC counts): refused "
                                "rather than guessed")
    fs = float(max(lead.sampling_rate for lead in leads))
    if fs <= 0:
        raise RecordError(path, f"sampling rate must be positive, got {fs!r}")
    columns = []
    for lead in leads:
        x = np.asarray(lead.samples, dtype=np.float64)
        if float(lead.sampling_rate) != fs:
            from edge_ecg.records.resampling import resample_array

            x = resample_array(x[:, None], float(lead.sampling_rate), fs)[:, 0]
        columns.append(x)
    n = min(len(c) for c in columns)
    signals = np.stack([c[:n] for c in columns], axis=1).astype(np.float32)
    names, renamed = canonical_leads([lead.label for lead in leads], path)
    meta: dict = {"format": "ecgdatakit", "vendor_format": str(ecg.source_format or ""),
                  "format_name": _format_name(parser), "original_leads": [lead.label for lead in leads]}
    device = ecg.recording.device
    for key, value in (("manufacturer", device.manufacturer), ("model", device.model)):
        if value:
            meta.setdefault("device", {})[key] = str(value)
    lead_meta(meta, renamed)
    if max(len(c) for c in columns) != n:
        add_note(meta, f"leads differ in length; all cut to the shortest ({n} samples)")
    for text in warned[:5]:
        add_note(meta, f"{_format_name(parser)} reader: {text}")
    patient = _patient(ecg.patient)
    if patient:
        meta[PATIENT_KEY] = patient
    start = ecg.recording.date if isinstance(ecg.recording.date, dt.datetime) else None
    if start is not None and start.tzinfo is not None:  # records keep local wall-clock time
        start = start.replace(tzinfo=None)
    record = Record(signals=signals, fs=fs, leads=names, name=path.stem, source=str(path), start_time=start, meta=meta)
    return check_record(record, path)


def _patient(p) -> dict[str, str]:
    """What the file says about the patient, for ``meta["patient"]`` and nowhere else."""
    out: dict[str, str] = {}
    name = " ".join(x for x in (str(p.first_name or "").strip(), str(p.last_name or "").strip()) if x)
    if p.patient_id:
        out["id"] = str(p.patient_id).strip()
    if name:
        out["name"] = name
    if p.birth_date:
        out["birth_date"] = p.birth_date.date().isoformat() if isinstance(p.birth_date, dt.datetime) else str(p.birth_date)
    if p.sex:
        out["sex"] = str(p.sex)
    return out
