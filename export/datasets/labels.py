"""Labels for windows of the three shared sources, read from their own annotation files.

* ``mitdb-ds1``: beat symbols and rhythm changes (``aux_note``) of the ``.atr`` file, and noise
  episodes (``~`` annotations whose ``subtype`` is a bit mask of noisy channels, -1 = unreadable,
  0 = clean again; MIT-BIH annotation conventions).
* ``cinc2015-vt``: ``alarms.csv`` (1 = true ventricular-tachycardia alarm); the alarm is at 300 s.
* ``ludb``: diagnoses in ``ludb.csv`` (one row per record, multi-line cells).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError

VENTRICULAR_BEATS = frozenset("VE")  # premature ventricular contraction, ventricular escape
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
VENTRICULAR_RHYTHMS = frozenset({"(VT", "(VFL", "(IVR"})
AF_RHYTHMS = frozenset({"(AFIB", "(AFL"})


@dataclass(frozen=True)
class MitAnnotations:
    """One MIT-BIH record's annotations as intervals and beat arrays (sample indices)."""

    beat_samples: np.ndarray      # int, every beat annotation
    beat_ventricular: np.ndarray  # bool, same length
    rhythm: list[tuple[int, int, str]]  # (start, stop, rhythm code such as "(AFIB")
    noise: list[tuple[int, int]]  # noisy or unreadable episodes
    n_samples: int


def read_mit_annotations(record_path: Path, n_samples: int) -> MitAnnotations:
    """Parse ``<record>.atr`` into beats, rhythm intervals and noise intervals."""
    import wfdb

    base = Path(record_path).with_suffix("")
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as exc:
        raise RecordError(base.with_suffix(".atr"), f"cannot read annotations: {exc}") from exc
    beats, vent = [], []
    rhythm: list[tuple[int, int, str]] = []
    noise: list[tuple[int, int]] = []
    cur_rhythm, cur_start = None, 0
    noise_start = None
    for sample, sym, sub, aux in zip(ann.sample, ann.symbol, ann.subtype, ann.aux_note):
        sample = int(sample)
        if sym in BEAT_SYMBOLS:
            beats.append(sample)
            vent.append(sym in VENTRICULAR_BEATS)
        elif sym == "+" and aux:
            code = aux.strip("\x00").strip()
            if cur_rhythm is not None:
                rhythm.append((cur_start, sample, cur_rhythm))
            cur_rhythm, cur_start = code, sample
        elif sym == "~":
            if int(sub) != 0 and noise_start is None:
                noise_start = sample
            elif int(sub) == 0 and noise_start is not None:
                noise.append((noise_start, sample))
                noise_start = None
    if cur_rhythm is not None:
        rhythm.append((cur_start, n_samples, cur_rhythm))
    if noise_start is not None:
        noise.append((noise_start, n_samples))
    return MitAnnotations(np.asarray(beats, dtype=np.int64), np.asarray(vent, dtype=bool), rhythm, noise, n_samples)


def _overlap(intervals, start: int, stop: int, codes=None) -> int:
    total = 0
    for iv in intervals:
        a, b = iv[0], iv[1]
        if codes is not None and iv[2] not in codes:
            continue
        total += max(0, min(b, stop) - max(a, start))
    return total


def longest_ventricular_run(ann: MitAnnotations, start: int, stop: int) -> int:
    """The longest number of consecutive ventricular beats inside [start, stop)."""
    sel = (ann.beat_samples >= start) & (ann.beat_samples < stop)
    best = run = 0
    for v in ann.beat_ventricular[sel]:
        run = run + 1 if v else 0
        best = max(best, run)
    return best


MIT_LABELS = ("af", "ventricular_ectopy", "ventricular_run", "artifact")


def mit_window_labels(ann: MitAnnotations, start: int, stop: int) -> dict[str, float]:
    """Labels of one window (why each rule: see the README's training section).

    af: atrial fibrillation or flutter rhythm for at least half the window.
    ventricular_ectopy: at least one ventricular beat (V or E).
    ventricular_run: at least three consecutive ventricular beats, or a VT/VFL/IVR rhythm episode
    of at least 1 s inside the window.
    artifact: at least 20% of the window inside a noise episode.
    """
    n = stop - start
    sel = (ann.beat_samples >= start) & (ann.beat_samples < stop)
    fs_guess = 360.0  # only for the 1 s rhythm rule; MIT-BIH is 360 Hz
    return {
        "af": float(_overlap(ann.rhythm, start, stop, AF_RHYTHMS) >= 0.5 * n),
        "ventricular_ectopy": float(ann.beat_ventricular[sel].any()),
        "ventricular_run": float(longest_ventricular_run(ann, start, stop) >= 3
                                 or _overlap(ann.rhythm, start, stop, VENTRICULAR_RHYTHMS) >= fs_guess),
        "artifact": float(_overlap(ann.noise, start, stop) >= 0.2 * n),
    }


def read_cinc_alarms(folder: Path) -> dict[str, int]:
    """``alarms.csv`` of the CinC 2015 data: record name -> 1 (true alarm) or 0 (false alarm)."""
    path = Path(folder) / "alarms.csv"
    if not path.is_file():
        raise RecordError(path, "no alarms.csv (expected the PhysioNet/CinC 2015 layout)")
    out: dict[str, int] = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            try:
                out[row["recordname"].strip()] = int(row["result"])
            except (KeyError, ValueError) as exc:
                raise RecordError(path, f"line {i}: need recordname,result with result 0/1 ({exc})") from exc
    return out


# LUDB labels the data support with enough positives (counts over the 200 records in the README).
LUDB_LABELS = ("af_flutter", "lvh", "conduction_abnormality", "sinus_bradycardia")


def ludb_record_labels(row: dict[str, str]) -> dict[str, float]:
    """Labels of one ``ludb.csv`` row (cells hold several diagnoses, one per line)."""
    rhythms = row.get("Rhythms", "").lower()
    hyper = row.get("Hypertrophies", "").lower()
    conduction = row.get("Conduction abnormalities", "").strip()
    return {
        "af_flutter": float("atrial fibrillation" in rhythms or "atrial flutter" in rhythms),
        "lvh": float("left ventricular hypertrophy" in hyper),
        "conduction_abnormality": float(bool(conduction)),
        "sinus_bradycardia": float("sinus bradycardia" in rhythms),
    }


def read_ludb_table(folder: Path) -> dict[str, dict[str, float]]:
    """``ludb.csv``: record id (as in ``data/<id>.hea``) -> labels."""
    path = Path(folder) / "ludb.csv"
    if not path.is_file():
        raise RecordError(path, "no ludb.csv (expected the LUDB 1.0.1 layout)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for i, row in enumerate(rows, start=2):
        rid = (row.get("ID") or "").strip()
        if not rid.isdigit():
            raise RecordError(path, f"line {i}: ID must be a record number, got {rid!r}")
        out[rid] = ludb_record_labels(row)
    return out
