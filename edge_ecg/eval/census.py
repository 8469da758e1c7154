"""Alarms raised on records that carry no rhythm annotations: how often the monitor cries wolf.

``stream_eval`` scores alarms against annotated episodes; most ECG collections have none, only a
label per record (CinC 2017: normal, AF, other rhythm, noisy; PTB-XL and LUDB: 10 s clinical ECGs).
Streamed as the daemon would receive them, they still say something no annotated set does: a
handheld strip of normal sinus rhythm should raise no red alarm at all, and an asystole or VF
alarm there is a defect (two were found this way: a start-up transient that blinded the QRS
detector, and broad complexes whose harmonic passed the VF test; docs/dsp-alarms.md).

Per record class (``REFERENCE.csv``: ``record,class`` as CinC 2017 ships it; otherwise one class,
``all``) the census counts each condition's onsets, the records that raised one, and onsets per
monitored hour. Nothing is fitted here, and no alarm is called true or false: what an alarm on a
class means is for the reader (VF on a normal strip is false; AF on an AF strip is not).
"""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_ecg.errors import InputError

ALL = "all"


@dataclass
class RecordCensus:
    """One record: its class, length and the onset time (s) of each alarm it raised, by condition."""

    name: str
    label: str
    seconds: float
    onsets: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class CensusReport:
    folder: str
    records: list[RecordCensus]
    block_s: float = 1.0

    def classes(self) -> list[str]:
        return sorted({r.label for r in self.records})

    def conditions(self) -> list[str]:
        """Every condition the analyzer raises (a row of zeros says as much as a count), then any
        other kind that was raised."""
        from edge_ecg.eval.stream_eval import kinds

        seen = {k for r in self.records for k in r.onsets}
        return list(kinds()) + sorted(seen - set(kinds()))

    def summary(self) -> dict[str, Any]:
        """``{"hours", "records", "classes": {CLASS: {"records", "hours", "conditions": {KIND:
        {"raised", "records", "per_hour"}}}}}``."""
        out: dict[str, Any] = {}
        for c in self.classes():
            rs = [r for r in self.records if r.label == c]
            hours = sum(r.seconds for r in rs) / 3600.0
            conds = {}
            for k in self.conditions():
                n = sum(len(r.onsets.get(k, ())) for r in rs)
                conds[k] = {"raised": n, "records": sum(bool(r.onsets.get(k)) for r in rs),
                            "per_hour": round(n / hours, 3) if hours > 0 else None}
            out[c] = {"records": len(rs), "hours": round(hours, 3), "conditions": conds}
        return {"hours": round(sum(r.seconds for r in self.records) / 3600.0, 3), "records": len(self.records), "classes": out}

    def format(self) -> str:
        s = self.summary()
        lines = [f"{self.folder}: {s['records']} records, {s['hours']:.2f} h streamed through the daemon DSP chain, {self.block_s:g} s blocks",
                 "alarms raised per record class (no rhythm annotations: nothing is scored true or false)"]
        for c, d in s["classes"].items():
            lines.append(f"class {c}: {d['records']} records, {d['hours']:.2f} h")
            for k, v in d["conditions"].items():
                lines.append(f"  {k:<26} {v['raised']:>5} raised in {v['records']:>4} records  {v['per_hour'] or 0:>7.2f} per hour")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "by_record": {r.name: {"class": r.label, "seconds": round(r.seconds, 2),
                                                         "onsets_s": r.onsets} for r in self.records if r.onsets}}


def record_classes(folder: Path) -> dict[str, str]:
    """``REFERENCE.csv`` (``record,class`` per line, CinC 2017's), or empty."""
    ref = folder / "REFERENCE.csv"
    if not ref.is_file():
        return {}
    out = {}
    with ref.open(newline="") as fh:
        for i, row in enumerate(csv.reader(fh), 1):
            if not row:
                continue
            if len(row) < 2 or not row[0].strip():
                raise InputError(ref, f"line {i}: expected 'record,class', got {','.join(row)!r}")
            out[row[0].strip()] = row[1].strip()
    return out


def census_record(path: Path, label: str, dsp_config: Mapping[str, Any] | None = None, block_s: float = 1.0) -> RecordCensus:
    """Stream one whole record through the daemon's analyzer and note every alarm onset."""
    from edge_ecg.eval.stream_eval import stream_alarms
    from edge_ecg.records import read_record

    rec = read_record(path)
    onsets: dict[str, list[float]] = {}
    for a in stream_alarms(rec, dsp_config, block_s):
        onsets.setdefault(a.kind, []).append(round(a.onset / rec.fs, 2))
    return RecordCensus(path.stem, label, rec.n_samples / rec.fs, onsets)


def _census_args(a: tuple) -> RecordCensus:
    return census_record(*a)


def census(folder: str | Path, dsp_config: Mapping[str, Any] | None = None, block_s: float = 1.0, jobs: int = 1,
           limit: int | None = None, progress: Callable[[int, int], None] | None = None) -> CensusReport:
    """Stream every WFDB record under ``folder`` (any depth) and count the alarms each raised.

    With ``REFERENCE.csv`` only the records it names are streamed, under their class; without it
    every header is, as class ``all``. ``limit``: the first N records (a quick look)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    classes = record_classes(folder)
    heas = sorted(folder.rglob("*.hea"))
    if classes:
        heas = [h for h in heas if h.stem in classes]
    if not heas:
        raise InputError(folder, "no WFDB records (*.hea)" + (" named in REFERENCE.csv" if classes else ""))
    heas = heas[:limit] if limit else heas
    args = [(h, classes.get(h.stem, ALL), dict(dsp_config or {}), block_s) for h in heas]
    out: list[RecordCensus] = []
    with ExitStack() as stack:
        if jobs > 1 and len(args) > 1:
            results = stack.enter_context(ProcessPoolExecutor(jobs)).map(_census_args, args, chunksize=8)
        else:
            results = map(_census_args, args)
        for r in results:
            out.append(r)
            if progress:
                progress(len(out), len(args))
    return CensusReport(str(folder), out, block_s)

