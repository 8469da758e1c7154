"""Per-record screening results and ``results.csv``, which is also the resume index.

``results.csv`` is appended to as batches finish (so a run that is killed keeps what it did) and
rewritten sorted at the end. A later run reads it back and skips every record whose content hash
is already there for the same bundle; rows of another bundle are screened again and replaced.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

SCREENED = "screened"
NOT_SCREENED = "not screened"

_FIXED_HEAD = ["record", "source_file", "content_hash", "status", "reason", "windows", "aggregate"]
_FIXED_TAIL = ["flagged", "findings", "quality_notes", "image", "bundle_name", "bundle_version", "bundle_hash"]
# Empty unless the run was asked to keep identifiers (``--keep-identifiers``); last, so that a
# results.csv written before these columns existed is still read as the same layout
PATIENT_COLUMNS = {"patient_id": "id", "patient_name": "name", "patient_birth_date": "birth_date"}
_NOTE_SEP = "; "
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BundleId:
    """What identifies the model a result came from: a result is only reused for the same hash."""

    name: str
    version: str
    hash: str


@dataclass
class RecordResult:
    """One record's outcome: probabilities and flags per label, or the reason it was not screened."""

    record: str
    source: str
    content_hash: str
    status: str
    bundle: BundleId
    reason: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    windows: int = 0
    aggregate: str = ""
    notes: list[str] = field(default_factory=list)
    image: str = ""  # snapshot PNG relative to the output folder (flagged records only)
    patient: dict[str, str] = field(default_factory=dict)  # only with --keep-identifiers

    @property
    def screened(self) -> bool:
        return self.status == SCREENED

    @property
    def flagged(self) -> bool:
        return any(self.flags.values())

    @property
    def findings(self) -> list[tuple[str, float]]:
        """Flagged labels with their probabilities, most probable first."""
        found = [(k, self.probabilities[k]) for k, v in self.flags.items() if v]
        return sorted(found, key=lambda kv: -kv[1])

    @property
    def max_probability(self) -> float:
        return max(self.probabilities.values()) if self.probabilities else float("nan")


def columns(labels: Sequence[str]) -> list[str]:
    return _layout(labels) + list(PATIENT_COLUMNS)


def _layout(labels: Sequence[str]) -> list[str]:
    return _FIXED_HEAD + [f"prob_{n}" for n in labels] + [f"flag_{n}" for n in labels] + _FIXED_TAIL


def same_layout(fieldnames: Sequence[str] | None, labels: Sequence[str]) -> bool:
    """Whether a results.csv header is ours for ``labels`` (with or without the patient columns)."""
    return fieldnames is not None and list(fieldnames) in (columns(labels), _layout(labels))


def to_row(r: RecordResult, labels: Sequence[str]) -> dict[str, str]:
    row = {
        "record": r.record,
        "source_file": r.source,
        "content_hash": r.content_hash,
        "status": r.status,
        "reason": r.reason,
        "windows": str(r.windows) if r.screened else "",
        "aggregate": r.aggregate,
        "flagged": ("yes" if r.flagged else "no") if r.screened else "",
        "findings": _NOTE_SEP.join(f"{k} {p:.3f}" for k, p in r.findings),
        "quality_notes": _NOTE_SEP.join(r.notes),
        "image": r.image,
        "bundle_name": r.bundle.name,
        "bundle_version": r.bundle.version,
        "bundle_hash": r.bundle.hash,
    }
    for col, key in PATIENT_COLUMNS.items():
        row[col] = r.patient.get(key, "")
    for n in labels:
        p = r.probabilities.get(n)
        row[f"prob_{n}"] = f"{p:.6f}" if p is not None else ""
        f = r.flags.get(n)
        row[f"flag_{n}"] = ("1" if f else "0") if f is not None else ""
    return row


def from_row(row: dict[str, str], labels: Sequence[str]) -> RecordResult:
    """A result read back from ``results.csv``; ``ValueError`` when the row is incomplete."""
    if None in row or any(v is None for v in row.values()):
        raise ValueError("row has a different number of fields than the header")
    for key in ("record", "content_hash", "status", "bundle_hash"):
        if not row.get(key):
            raise ValueError(f"missing {key}")
    for key in ("content_hash", "bundle_hash"):
        if not _HEX64.fullmatch(row[key]):
            raise ValueError(f"{key} is not a sha256 hex digest")
    probs: dict[str, float] = {}
    flags: dict[str, bool] = {}
    if row["status"] == SCREENED:
        for n in labels:
            probs[n] = float(row[f"prob_{n}"])
            flags[n] = row[f"flag_{n}"] == "1"
    elif row["status"] != NOT_SCREENED:
        raise ValueError(f"unknown status {row['status']!r}")
    return RecordResult(
        record=row["record"],
        source=row.get("source_file", ""),
        content_hash=row["content_hash"],
        status=row["status"],
        bundle=BundleId(row.get("bundle_name", ""), row.get("bundle_version", ""), row["bundle_hash"]),
        reason=row.get("reason", ""),
        probabilities=probs,
        flags=flags,
        windows=int(row["windows"]) if row.get("windows") else 0,
        aggregate=row.get("aggregate", ""),
        notes=[n for n in (row.get("quality_notes") or "").split(_NOTE_SEP) if n],
        image=row.get("image", ""),
        patient={key: row[col] for col, key in PATIENT_COLUMNS.items() if row.get(col)},
    )


def read_results(path: Path, labels: Sequence[str]) -> tuple[list[RecordResult], int]:
    """Rows of an earlier run (in file order) and how many rows were unusable.

    A run killed mid-write leaves a truncated last row, and a file written for other labels has
    other columns: such rows are not reused (their records are screened again), never an error.
    """
    if not path.is_file():
        return [], 0
    out: list[RecordResult] = []
    bad = 0
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not same_layout(reader.fieldnames, labels):
            return [], sum(1 for _ in reader)
        for row in reader:
            try:
                out.append(from_row(row, labels))
            except (ValueError, KeyError, TypeError):
                bad += 1
    return out, bad


def foreign_results(path: Path, labels: Sequence[str], bundle: BundleId) -> str:
    """What else than ``bundle``'s results ``path`` holds ("" when nothing): an output folder
    belongs to one bundle, so results of another are never silently mixed in or replaced."""
    if not path.is_file() or path.stat().st_size == 0:
        return ""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return ""
        if not same_layout(reader.fieldnames, labels):
            probs = [c[5:] for c in reader.fieldnames if c.startswith("prob_")]
            return f"results for other labels ({', '.join(probs) or 'unknown columns'})"
        for row in reader:
            h = row.get("bundle_hash") or ""
            if _HEX64.fullmatch(h) and h != bundle.hash:
                return f"results of bundle {row.get('bundle_name')} {row.get('bundle_version')} (sha256 {h[:12]})"
    return ""


class ResultsWriter:
    """Appends rows as they are produced and flushes, so an interrupted run can resume."""

    def __init__(self, path: Path, labels: Sequence[str], existing: Iterable[RecordResult] = ()) -> None:
        self.path = path
        self.labels = list(labels)
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns(self.labels))
            w.writeheader()
            for r in existing:
                w.writerow(to_row(r, self.labels))
        os.replace(tmp, path)
        self._fh = open(path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=columns(self.labels))

    def append(self, results: Iterable[RecordResult]) -> None:
        for r in results:
            self._writer.writerow(to_row(r, self.labels))
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def write_results(path: Path, results: Sequence[RecordResult], labels: Sequence[str]) -> None:
    """The final ``results.csv``: every row, atomically replaced."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns(labels))
        w.writeheader()
        for r in results:
            w.writerow(to_row(r, labels))
    os.replace(tmp, path)
