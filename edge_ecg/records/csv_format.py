"""CSV records, with one stated header convention (written by ``write_csv``, read by ``read_csv``).

The convention (also in the README's Records section)::

    # edge-ecg csv 1
    # fs: 500
    # start_time: 2024-05-01T08:30:00
    # name: bed4-2024-05-01
    time_s,I (uV),II (uV),V1 (uV)
    0.000000,12.500,-3.000,
    0.002000,13.000,-2.500,4.000

- Optional comment lines before the header, ``# key: value``: ``fs`` (Hz), ``start_time``
  (ISO 8601), ``name``; others are kept in ``meta["csv_header"]``.
- One header row (required). An optional first column ``time_s`` (also ``time``, ``t``,
  ``seconds``: seconds from the start) or ``sample`` (a sample number, ignored). Every other
  column is a lead: ``NAME``, ``NAME (unit)`` or ``NAME [unit]`` with unit uV, mV or V; no unit
  means microvolts. Names are mapped to canonical leads (``MLII`` -> ``II``).
- The sampling rate comes from ``# fs:``; without it, from a uniform ``time_s`` column.
- Comma, semicolon or tab separated. An empty cell (or ``nan``, ``NA``) is a gap (NaN).

A file without a header (one value per line, as some exports are) can be read by passing
``leads``, ``fs`` and ``unit`` to ``read_csv``; ``read_record`` insists on the header.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.checks import add_note, check_file, check_record, lead_meta, unit_factor
from edge_ecg.records.identity import PATIENT_KEY, identifiers
from edge_ecg.records.leads import canonical_lead, canonical_leads
from edge_ecg.records.record import Record

TIME_COLUMNS = ("time_s", "time", "t", "seconds", "time (s)", "time [s]")
INDEX_COLUMNS = ("sample", "index", "n")
_UNIT = re.compile(r"^(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*$")
_MISSING = {"", "nan", "na", "n/a", "null", "-"}


def _lead_column(cell: str, path: Path) -> tuple[str, float]:
    """(lead name as written, factor to microvolts) of a header cell ``NAME (unit)``."""
    m = _UNIT.match(cell.strip())
    name, unit = (m.group("name"), m.group("unit")) if m else (cell.strip(), "uV")
    factor = unit_factor(unit)
    if factor is None:
        raise RecordError(path, f"column {cell!r}: unit {unit!r} is not a voltage (use uV, mV or V)")
    if not name:
        raise RecordError(path, f"column {cell!r} has no lead name")
    return name, factor


def looks_like_csv_record(path: Path) -> bool:
    """Whether ``path`` follows the convention (for ``find_records``: skip label tables)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = [f.readline() for _ in range(20)]
    except OSError:
        return False
    for line in head:
        if line.startswith("#"):
            if line.lower().startswith("# edge-ecg csv") or re.match(r"#\s*fs\s*:", line, re.IGNORECASE):
                return True
            continue
        cells = [c.strip() for c in re.split(r"[,;\t]", line) if c.strip()]
        leads = [c for c in cells if c.lower() not in TIME_COLUMNS + INDEX_COLUMNS]
        known = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}
        return bool(leads) and all(canonical_lead(_UNIT.sub(r"\g<name>", c)) in known for c in leads)
    return False


CHUNK_LINES = 1 << 16  # rows parsed at a time: ~6 MB of text for 12 leads, so memory follows the samples
# Sampling rates of ECG devices and databases: a rate inferred from a rounded time column snaps to
# the nearest of these when within 0.5% (a time_s column with 6 decimals at 360 Hz gives 359.97)
PLAUSIBLE_RATES = (50, 60, 100, 120, 125, 128, 150, 180, 200, 240, 250, 256, 300, 320, 360, 400, 480, 500, 512,
                   600, 800, 1000, 1024, 1200, 2000, 2048, 4000, 4096, 5000, 8000, 8192, 10000, 16000, 16384, 20000)
PATIENT_LINES = {"patient_id": "id", "patient_name": "name", "birth_date": "birth_date", "patient_sex": "sex"}


def read_csv(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None, unit: str = "uV") -> Record:
    """Read a CSV record; ``fs``/``leads``/``unit`` are for header-less files (see module doc).

    Read in chunks of ``CHUNK_LINES`` rows straight into float32, so a 100 MB file costs about
    its own size in memory, not ten times it. UTF-8 (with or without BOM) is expected; a file
    that is not UTF-8 is read as Latin-1 (what European carts and spreadsheet exports write:
    "µV" as byte 0xB5) with a note in ``meta["read_notes"]``.
    """
    path = Path(path)
    check_file(path)
    try:
        return _read_csv(path, "utf-8-sig", fs, leads, unit)
    except UnicodeDecodeError:
        record = _read_csv(path, "latin-1", fs, leads, unit)
        add_note(record.meta, "text is not UTF-8: read as Latin-1 (ISO 8859-1)")
        return record


def _read_csv(path: Path, encoding: str, fs: float | None, leads: Sequence[str] | None, unit: str) -> Record:
    with open(path, encoding=encoding, newline="") as f:
        meta_lines: dict[str, str] = {}
        line_no, first = 0, ""
        for line in f:
            line_no += 1
            if line.startswith("#") or not line.strip():
                m = re.match(r"#\s*([A-Za-z_][\w ]*?)\s*:\s*(.*)$", line.rstrip("\r\n"))
                if m:
                    meta_lines[m.group(1).strip().lower()] = m.group(2).strip()
                continue
            first = line.rstrip("\r\n")
            break
        if not first:
            raise RecordError(path, "no data rows")
        delimiter = max((",", ";", "\t"), key=first.count)
        pending: list[str] = []
        if leads is None:
            header = next(csv.reader([first], delimiter=delimiter))
            if _is_number(header[0]):
                raise RecordError(path, "no header row: the first line must name the columns, e.g. 'time_s,I (uV),II (uV)'")
        else:
            header = [f"{lead} ({unit})" for lead in leads]
            pending = [first]
            line_no -= 1
        time_col = header[0].strip().lower() in TIME_COLUMNS
        index_col = header[0].strip().lower() in INDEX_COLUMNS
        lead_cells = header[1:] if (time_col or index_col) else header
        columns = [_lead_column(c, path) for c in lead_cells]
        if not columns:
            raise RecordError(path, "no lead columns in the header")
        names, renamed = canonical_leads([name for name, _ in columns], path)
        factors = np.array([factor for _, factor in columns], dtype=np.float64)
        n_cols = len(header)
        sig_parts: list[np.ndarray] = []
        time_parts: list[np.ndarray] = []
        while True:
            chunk = pending + list(itertools.islice(f, CHUNK_LINES))
            pending = []
            if not chunk:
                break
            values = _parse_rows(chunk, delimiter, n_cols, path, line_no + 1)
            line_no += len(chunk)
            if values.shape[0] == 0:
                continue
            if time_col:
                time_parts.append(values[:, 0].copy())
            sig = values[:, 1:] if (time_col or index_col) else values
            sig_parts.append((sig * factors[None, :]).astype(np.float32))
    if not sig_parts:
        raise RecordError(path, "header but no data rows")
    signals = np.concatenate(sig_parts, axis=0) if len(sig_parts) > 1 else sig_parts[0]
    del sig_parts
    rate = fs
    if rate is None and "fs" in meta_lines:
        try:
            rate = float(meta_lines["fs"].split()[0])
        except (ValueError, IndexError):
            raise RecordError(path, f"'# fs: {meta_lines['fs']}' is not a number") from None
    if rate is None and time_col:
        rate = rate_from_times(np.concatenate(time_parts), path)
    if rate is None:
        raise RecordError(path, "no sampling rate: add a '# fs: RATE' line or a time_s column")
    if not np.isfinite(rate) or rate <= 0:
        raise RecordError(path, f"sampling rate must be positive, got {rate!r}")
    start = None
    if "start_time" in meta_lines:
        try:
            start = dt.datetime.fromisoformat(meta_lines["start_time"])
        except ValueError:
            raise RecordError(path, f"'# start_time: {meta_lines['start_time']}' is not ISO 8601") from None
    patient = {PATIENT_LINES[k]: v for k, v in meta_lines.items() if k in PATIENT_LINES and v}
    header_meta = {k: v for k, v in meta_lines.items() if k not in PATIENT_LINES}
    meta = lead_meta({"format": "csv", "original_leads": [c.strip() for c in lead_cells], "csv_header": header_meta},
                     renamed)
    if patient:
        meta[PATIENT_KEY] = patient
    record = Record(signals=signals, fs=float(rate), leads=names, name=meta_lines.get("name", path.stem),
                    source=str(path), start_time=start, meta=meta)
    return check_record(record, path)


def rate_from_times(t: np.ndarray, path: Path) -> float:
    """The sampling rate of a uniform time column, snapped to a plausible device rate.

    The mean step over the whole column ((t_last - t_first) / (n - 1)) is not hurt by the
    rounding of each printed time the way one step is (6 decimals at 360 Hz print steps of
    0.002777 and 0.002778); the result snaps to ``PLAUSIBLE_RATES`` within 0.5%, else to a whole
    number of Hz when the printed precision cannot tell it apart.
    """
    if t.size < 2 or not np.all(np.isfinite(t)):
        raise RecordError(path, "cannot tell the sampling rate: time column too short or has gaps; add '# fs: RATE'")
    step = float(t[-1] - t[0]) / (t.size - 1)
    if step <= 0:
        raise RecordError(path, "time column does not increase; add '# fs: RATE'")
    steps = np.diff(t)
    if np.max(np.abs(steps - step)) > 0.01 * step:
        raise RecordError(path, "time column is not uniform (irregular sampling?); add '# fs: RATE'")
    rate = 1.0 / step
    near = min(PLAUSIBLE_RATES, key=lambda r: abs(r - rate))
    if abs(near - rate) <= 0.005 * near:
        return float(near)
    whole = round(rate)
    resolution = float(np.max(np.abs(steps - step)))  # how far printed steps stray: the column's precision
    if whole > 0 and abs(1.0 / whole - step) <= max(resolution, 1e-9):
        return float(whole)
    return rate


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _parse_rows(lines: list[str], delimiter: str, n_cols: int, path: Path, first_line_no: int) -> np.ndarray:
    """One chunk of data lines as a float64 table; an empty cell is NaN, a short row an error."""
    lines = [ln.rstrip("\r\n") for ln in lines]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if not lines:
        return np.zeros((0, n_cols))
    try:  # fast path: a full numeric table
        out = np.loadtxt(lines, delimiter=delimiter, ndmin=2, dtype=np.float64, comments="#")
        if out.shape[1] == n_cols or out.size == 0:
            return out.reshape(-1, n_cols) if out.size else np.zeros((0, n_cols))
    except ValueError:
        pass
    rows = np.empty((len(lines), n_cols), dtype=np.float64)
    for k, row in enumerate(csv.reader(lines, delimiter=delimiter)):
        if len(row) != n_cols:
            raise RecordError(path, f"line {first_line_no + k}: {len(row)} cells, header has {n_cols} (truncated or malformed row)")
        for j, cell in enumerate(row):
            c = cell.strip()
            if c.lower() in _MISSING:
                rows[k, j] = np.nan
                continue
            try:
                rows[k, j] = float(c)
            except ValueError:
                raise RecordError(path, f"line {first_line_no + k}, column {j + 1}: {cell!r} is not a number") from None
    return rows


def write_csv(record: Record, path: str | Path) -> Path:
    """Write ``record`` in the convention above: microvolts to 1/1000 uV, gaps as empty cells."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, k = record.signals.shape
    header = ["time_s"] + [f"{lead} (uV)" for lead in record.leads]
    lines = ["# edge-ecg csv 1", f"# fs: {record.fs:g}"]
    if isinstance(record.start_time, dt.datetime):
        lines.append(f"# start_time: {record.start_time.isoformat()}")
    if record.name:
        lines.append(f"# name: {record.name}")
    ids = identifiers(record)
    lines += [f"# {key}: {ids[field]}" for key, field in PATIENT_LINES.items() if ids.get(field)]
    lines.append(",".join(header))
    buf = io.StringIO()
    table = np.column_stack([np.arange(n) / record.fs, record.signals.astype(np.float64)])
    np.savetxt(buf, table, delimiter=",", fmt=["%.6f"] + ["%.3f"] * k)
    body = buf.getvalue().replace("nan", "")
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    return path
