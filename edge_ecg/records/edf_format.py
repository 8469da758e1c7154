"""EDF and EDF+ (continuous, EDF+C) through ``edfio``, a small pure-Python library made for it.

Reading keeps the channels whose physical dimension is a voltage (uV, mV, V) as ECG leads; other
channels (respiration, SpO2, annotations) go to ``meta["other_signals"]`` or are skipped. Leads
sampled at a lower rate than the fastest ECG lead are brought to it with the polyphase resampler.

Gaps: EDF has no NaN. ``write_edf`` keeps the lowest digital value (-32768) for gaps (and for
the padding to a whole data record), scales the samples into -32767..32767, and says so in the
signal's transducer field (``gap=digital min``); ``read_edf`` turns digital-minimum samples back
into NaN only for signals that carry that marker, so a clipped sample in another tool's file
stays a sample. Other EDF readers see the physical minimum there.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.checks import add_note, check_file, check_record, lead_meta, plain_words, unit_factor
from edge_ecg.records.identity import PATIENT_KEY
from edge_ecg.records.leads import canonical_leads
from edge_ecg.records.record import Record

GAP_DIGITAL = -32768
DIGITAL_RANGE = (-32767, 32767)  # where samples go; GAP_DIGITAL lies just below
GAP_MARK = "gap=digital min"
TRANSDUCER = f"ECG electrode {GAP_MARK}"


def _edfio(path: Path):
    try:
        import edfio
    except ImportError as exc:  # a runtime dependency (pyproject); say what to install, not a bare traceback
        raise RecordError(path, "EDF support needs the 'edfio' package (pip install edfio)") from exc
    return edfio


def read_edf(path: str | Path) -> Record:
    """Read the voltage channels of an EDF/EDF+C file as a record.

    The header's count of data records is checked against the file's length in plain words: a
    file that ends inside a data record is truncated; one that ends after fewer whole records
    than announced is an incomplete copy; one that holds more (a recorder that never updated
    its header) or declares -1 (unknown, allowed while recording) is read in full with a note.
    """
    path = Path(path)
    check_file(path)
    edfio = _edfio(path)
    _check_magic(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            edf = edfio.read_edf(path, lazy_load_data=False)
    except Exception as exc:  # edfio raises ValueError/EOF/... for bad headers and short data
        raise RecordError(path, f"cannot read EDF: {plain_words(exc)}") from exc
    declared = _declared_records(path)
    notes = []
    for w in caught:  # edfio repairs a short or long file with a warning; a record must not lose data silently
        text = str(w.message)
        if "Incomplete data record" in text:
            raise RecordError(path, f"cannot read EDF: file is truncated: it ends inside data record "
                                    f"{edf.num_data_records + 1} (of {_count(declared)} its header announces)")
        if "data records, but file contains" in text:
            actual = edf.num_data_records
            if declared is not None and 0 <= declared and actual < declared:
                raise RecordError(path, f"cannot read EDF: file holds {actual} whole data records but its header "
                                        f"announces {declared}: an incomplete copy (the end of the recording is missing)")
            notes.append(f"EDF header announces {_count(declared)} data records, the file holds {actual}: "
                         f"all {actual} read (the recorder did not update its header)")
    ecg, other = [], {}
    for sig in edf.signals:
        factor = unit_factor(sig.physical_dimension)
        if factor is None:
            other[sig.label] = np.asarray(sig.data, dtype=np.float32)
            continue
        ecg.append((sig, factor))
    if not ecg:
        raise RecordError(path, f"no ECG (voltage) channels among {', '.join(s.label for s in edf.signals) or 'none'}")
    fs = max(float(s.sampling_frequency) for s, _ in ecg)
    if fs <= 0:
        raise RecordError(path, f"sampling rate must be positive, got {fs!r}")
    columns = []
    for sig, factor in ecg:
        digital = np.asarray(sig.digital)
        data = np.asarray(sig.data, dtype=np.float64) * factor
        if GAP_MARK in sig.transducer_type:
            data[digital <= sig.digital_min] = np.nan
        if float(sig.sampling_frequency) != fs:
            from edge_ecg.records.resampling import resample_array

            data = resample_array(data[:, None], float(sig.sampling_frequency), fs)[:, 0]
        columns.append(data)
    n = min(len(c) for c in columns)
    signals = np.stack([c[:n] for c in columns], axis=1).astype(np.float32)
    # trailing rows where every lead is a gap are the padding to a whole data record (write_edf)
    valid = np.nonzero(np.isfinite(signals).any(axis=1))[0]
    signals = signals[: valid[-1] + 1] if valid.size else signals
    leads, renamed = canonical_leads([s.label for s, _ in ecg], path)
    start = None
    try:
        start = edf.startdatetime
    except Exception:  # an anonymised start date: no start time rather than a wrong one
        start = None
    meta = {"format": "edf", "original_leads": [s.label for s, _ in ecg], "edf_version": "EDF+" if edf.reserved.startswith("EDF+") else "EDF"}
    lead_meta(meta, renamed)
    for note in notes:
        add_note(meta, note)
    patient = _patient(edf)
    if patient:
        meta[PATIENT_KEY] = patient
    if other:
        meta["other_signals"] = other
    record = Record(signals=signals, fs=fs, leads=leads, name=path.stem, source=str(path), start_time=start, meta=meta)
    return check_record(record, path)


def _check_magic(path: Path) -> None:
    """An EDF starts with its version field, ``0`` and seven spaces; anything else is another file."""
    with open(path, "rb") as f:
        head = f.read(256)
    if not head.startswith(b"0       "):
        raise RecordError(path, "cannot read EDF: not an EDF file: it does not start with the EDF version field '0'")
    if len(head) < 256:
        raise RecordError(path, f"cannot read EDF: not an EDF file: {len(head)} bytes, shorter than the 256-byte EDF header")


def _declared_records(path: Path) -> int | None:
    """The header's 'number of data records' field (bytes 236-243), or None if unreadable."""
    try:
        with open(path, "rb") as f:
            f.seek(236)
            return int(f.read(8).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _count(declared: int | None) -> str:
    return "an unknown number of (-1)" if declared == -1 else ("?" if declared is None else str(declared))


def _patient(edf) -> dict[str, str]:
    """Patient identifiers of an EDF+ header (code, name, birth date), for ``PATIENT_KEY`` only."""
    out: dict[str, str] = {}
    try:
        p = edf.patient
    except Exception:  # plain EDF: a free-text patient field; kept whole as the name field
        try:
            text = str(edf.local_patient_identification).strip()
        except Exception:
            text = ""
        return {"name": text} if text and text.upper() not in ("X", "X X X X") else {}
    for key, attr in (("id", "code"), ("name", "name")):
        try:
            value = str(getattr(p, attr) or "").strip()
        except Exception:
            value = ""
        if value and value.upper() != "X":
            out[key] = value
    try:
        bd = p.birthdate
        if bd:
            out["birth_date"] = bd.isoformat()
    except Exception:  # "X" (unknown) or an anonymised date
        pass
    return out


def write_edf(record: Record, path: str | Path) -> Path:
    """Write ``record`` as EDF+C, one signal per lead in microvolts, 16-bit, each lead's own range.

    The physical range is the lead's own min..max (whole uV), so the resolution is about
    (max - min) / 65535 microvolts per step: well under 1 uV for any real ECG.
    """
    path = Path(path)
    edfio = _edfio(path)
    duration = _record_duration(record.fs)
    per_record = int(round(record.fs * duration))
    n_out = -(-record.n_samples // per_record) * per_record  # EDF holds whole data records: pad with gaps
    signals = []
    for j, lead in enumerate(record.leads):
        x = record.signals[:, j].astype(np.float64)
        finite = np.isfinite(x)
        lo, hi = (float(x[finite].min()), float(x[finite].max())) if finite.any() else (-1.0, 1.0)
        # whole microvolts: the header holds the physical range in 8 characters, so a fraction
        # would be rounded there and shift every sample; GAP_DIGITAL maps to p_min, below lo
        p_min, p_max = float(np.floor(lo) - 1.0), float(max(np.ceil(hi), np.floor(lo) + 1.0))
        step = (p_max - p_min) / (DIGITAL_RANGE[1] - GAP_DIGITAL)
        digital = np.full(n_out, GAP_DIGITAL, dtype=np.int16)
        digital[: x.size][finite] = np.clip(np.round((x[finite] - p_min) / step) + GAP_DIGITAL, *DIGITAL_RANGE).astype(np.int16)
        signals.append(
            edfio.EdfSignal.from_digital(
                digital, record.fs, label=_edf_label(lead), transducer_type=TRANSDUCER,
                physical_dimension="uV", physical_range=(p_min, p_max), digital_range=(GAP_DIGITAL, DIGITAL_RANGE[1]),
            )
        )
    start = record.start_time if isinstance(record.start_time, dt.datetime) else None
    try:
        edf = edfio.Edf(
            signals,
            patient=_edf_patient(record, edfio),
            recording=edfio.Recording(startdate=start.date() if start else None, additional=(_ascii(record.name).replace(" ", "_")[:20] or "edge-ecg",)),
            starttime=start.time().replace(microsecond=0) if start else None,
            data_record_duration=duration,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        edf.write(path)
    except Exception as exc:  # edfio validates header fields (lengths, ASCII, record duration)
        raise RecordError(path, f"cannot write EDF: {exc}") from exc
    return path


def _edf_patient(record: Record, edfio):
    """The EDF+ patient field from ``meta["patient"]`` (only a record not anonymised has it)."""
    from edge_ecg.records.identity import identifiers

    ids = identifiers(record)
    if not ids:
        return None

    def field(text: str) -> str:
        return _ascii(text).strip().replace(" ", "_")[:30] or "X"

    birth = None
    if ids.get("birth_date"):
        try:
            birth = dt.date.fromisoformat(ids["birth_date"][:10])
        except ValueError:
            birth = None
    sex = ids.get("sex", "X")[:1].upper()
    return edfio.Patient(code=field(ids.get("id", "X")), name=field(ids.get("name", "X")), birthdate=birth,
                         sex=sex if sex in ("F", "M") else "X")


def _record_duration(fs: float) -> float:
    """Shortest data-record duration (1 s preferred) holding a whole number of samples."""
    from fractions import Fraction

    step = Fraction(str(float(fs))).limit_denominator(1000)
    duration = Fraction(step.denominator, 1) if step.denominator > 1 else Fraction(1)
    return float(duration)


def _edf_label(lead: str) -> str:
    """EDF+ standard texts name ECG channels 'ECG <lead>' (e.g. 'ECG II', 'ECG V1')."""
    return _ascii(f"ECG {lead}")[:16]


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
