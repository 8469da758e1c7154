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
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.checks import check_file, check_record, unit_factor
from edge_ecg.records.leads import canonical_lead
from edge_ecg.records.record import Record

TIME_COLUMNS = ("time_s", "time", "t", "seconds", "time (s)", "time [s]")
INDEX_COLUMNS = ("sample", "index", "n")
_UNIT = re.compile(r"^(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*$")
_MISSING = {"", "nan", "na", "n/a", "null", "-"}


def _lead_column(cell: str, path: Path) -> tuple[str, float]:
    m = _UNIT.match(cell.strip())
    name, unit = (m.group("name"), m.group("unit")) if m else (cell.strip(), "uV")
    factor = unit_factor(unit)
    if factor is None:
        raise RecordError(path, f"column {cell!r}: unit {unit!r} is not a voltage (use uV, mV or V)")
    if not name:
        raise RecordError(path, f"column {cell!r} has no lead name")
    return canonical_lead(name), factor


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


def read_csv(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None, unit: str = "uV") -> Record:
    """Read a CSV record; ``fs``/``leads``/``unit`` are for header-less files (see module doc)."""
    path = Path(path)
    check_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(path, f"not a text CSV file ({exc.reason} at byte {exc.start})") from exc
    lines = text.splitlines()
    meta_lines: dict[str, str] = {}
    row0 = 0
    while row0 < len(lines) and (lines[row0].startswith("#") or not lines[row0].strip()):
        m = re.match(r"#\s*([A-Za-z_][\w ]*?)\s*:\s*(.*)$", lines[row0])
        if m:
            meta_lines[m.group(1).strip().lower()] = m.group(2).strip()
        row0 += 1
    if row0 >= len(lines):
        raise RecordError(path, "no data rows")
    delimiter = max((",", ";", "\t"), key=lines[row0].count)
    if leads is None:
        header = next(csv.reader([lines[row0]], delimiter=delimiter))
        data_lines = lines[row0 + 1 :]
        if _is_number(header[0]):
            raise RecordError(path, "no header row: the first line must name the columns, e.g. 'time_s,I (uV),II (uV)'")
    else:
        header = [f"{lead} ({unit})" for lead in leads]
        data_lines = lines[row0:]
    time_col = header[0].strip().lower() in TIME_COLUMNS
    index_col = header[0].strip().lower() in INDEX_COLUMNS
    lead_cells = header[1:] if (time_col or index_col) else header
    columns = [_lead_column(c, path) for c in lead_cells]
    names = tuple(name for name, _ in columns)
    if not names:
        raise RecordError(path, "no lead columns in the header")
    values = _parse_rows(data_lines, delimiter, len(header), path, row0 + 2 if leads is None else row0 + 1)
    if values.shape[0] == 0:
        raise RecordError(path, "header but no data rows")
    rate = fs
    if rate is None and "fs" in meta_lines:
        try:
            rate = float(meta_lines["fs"].split()[0])
        except (ValueError, IndexError):
            raise RecordError(path, f"'# fs: {meta_lines['fs']}' is not a number") from None
    if rate is None and time_col:
        steps = np.diff(values[:, 0])
        if steps.size == 0 or not np.all(np.isfinite(steps)):
            raise RecordError(path, "cannot tell the sampling rate: time column too short or has gaps; add '# fs: RATE'")
        step = float(np.median(steps))
        if step <= 0 or np.max(np.abs(steps - step)) > 0.01 * step:
            raise RecordError(path, "time column is not uniform; add '# fs: RATE'")
        rate = 1.0 / step
    if rate is None:
        raise RecordError(path, "no sampling rate: add a '# fs: RATE' line or a time_s column")
    if not np.isfinite(rate) or rate <= 0:
        raise RecordError(path, f"sampling rate must be positive, got {rate!r}")
    sig = values[:, 1:] if (time_col or index_col) else values
    signals = (sig * np.array([f for _, f in columns])[None, :]).astype(np.float32)
    start = None
    if "start_time" in meta_lines:
        try:
            start = dt.datetime.fromisoformat(meta_lines["start_time"])
        except ValueError:
            raise RecordError(path, f"'# start_time: {meta_lines['start_time']}' is not ISO 8601") from None
    meta = {"format": "csv", "original_leads": [c.strip() for c in lead_cells], "csv_header": meta_lines}
    record = Record(signals=signals, fs=float(rate), leads=names, name=meta_lines.get("name", path.stem),
                    source=str(path), start_time=start, meta=meta)
    return check_record(record, path)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _parse_rows(lines: list[str], delimiter: str, n_cols: int, path: Path, first_line_no: int) -> np.ndarray:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    try:  # fast path: a full numeric table
        out = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=delimiter, ndmin=2, dtype=np.float64, comments="#")
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
    lines.append(",".join(header))
    buf = io.StringIO()
    table = np.column_stack([np.arange(n) / record.fs, record.signals.astype(np.float64)])
    np.savetxt(buf, table, delimiter=",", fmt=["%.6f"] + ["%.3f"] * k)
    body = buf.getvalue().replace("nan", "")
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    return path
