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


def read_ludb_table(folder: Path, labels=None) -> dict[str, dict[str, float]]:
    """``ludb.csv``: record id (as in ``data/<id>.hea``) -> labels (``labels(row)``, by default
    ``ludb_record_labels``; ``ludb_screen_labels`` for the 12-lead screening task)."""
    labels = labels or ludb_record_labels
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
        out[rid] = labels(row)
    return out


# --- PhysioNet/CinC 2017 (AF from a short single-lead recording) ------------------------------

CINC2017_CLASSES = {"N": "normal", "A": "af", "O": "other_rhythm", "~": "noise"}
AF_LABELS = ("af", "normal", "other_rhythm", "noise")


def read_cinc2017_reference(folder: Path) -> dict[str, str]:
    """``REFERENCE.csv`` of the CinC 2017 training set: record name -> class (N, A, O or ~)."""
    path = Path(folder) / "REFERENCE.csv"
    if not path.is_file():
        raise RecordError(path, "no REFERENCE.csv (expected the PhysioNet/CinC 2017 training-set layout)")
    out: dict[str, str] = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.reader(fh), start=1):
            if not row:
                continue
            if len(row) != 2 or row[1].strip() not in CINC2017_CLASSES:
                raise RecordError(path, f"line {i}: need record,class with class in N/A/O/~, got {row!r}")
            out[row[0].strip()] = row[1].strip()
    return out


def cinc2017_labels(cls: str) -> dict[str, float]:
    """One-hot over ``AF_LABELS`` for a CinC 2017 class (the four classes exclude each other)."""
    name = CINC2017_CLASSES[cls]
    return {k: float(k == name) for k in AF_LABELS}


# --- the 12-lead screening labels: PTB-XL SCP-ECG statements and LUDB diagnoses ---------------

SCREEN_LABELS = ("af_flutter", "lvh", "lbbb", "rbbb", "mi", "avb1", "normal")

# SCP-ECG statements (PTB-XL ``scp_statements.csv``) behind each label: PTB-XL marks a statement
# present with a likelihood (0 = "unspecified" for rhythm statements), so presence counts.
SCREEN_SCP = {
    "af_flutter": ("AFIB", "AFLT"),
    "lvh": ("LVH",),
    "lbbb": ("CLBBB",),
    "rbbb": ("CRBBB",),
    "mi": ("IMI", "AMI", "ASMI", "ILMI"),
    "avb1": ("1AVB",),
    "normal": ("NORM",),
}


def ptbxl_screen_labels(scp_codes: dict[str, float]) -> dict[str, float]:
    """Screening labels of one PTB-XL record from its ``scp_codes`` dictionary."""
    return {name: float(any(code in scp_codes for code in codes)) for name, codes in SCREEN_SCP.items()}


def read_ptbxl_table(folder: Path) -> dict[str, dict]:
    """``ptbxl_database.csv``: record file stem (``00001_hr``) -> {"labels", "fold", "patient"}."""
    import ast

    path = Path(folder) / "ptbxl_database.csv"
    if not path.is_file():
        raise RecordError(path, "no ptbxl_database.csv (expected the PTB-XL layout)")
    out = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            try:
                codes = ast.literal_eval(row["scp_codes"])
                stem = Path(row["filename_hr"]).name
                fold = int(row["strat_fold"])
                patient = str(int(float(row["patient_id"])))
            except (KeyError, ValueError, SyntaxError) as exc:
                raise RecordError(path, f"line {i}: unreadable scp_codes/filename_hr/strat_fold/patient_id ({exc})") from None
            if not isinstance(codes, dict):
                raise RecordError(path, f"line {i}: scp_codes is not a dictionary")
            out[stem] = {"labels": ptbxl_screen_labels(codes), "fold": fold, "patient": patient}
    return out


def ludb_screen_labels(row: dict[str, str]) -> dict[str, float]:
    """The screening labels of one ``ludb.csv`` row, mapped to the PTB-XL statements' meanings.

    MI = a scar (old infarction) or a STEMI; "Undefined ischemia/scar/supp.nstemi" alone leaves MI
    unknown (NaN), not negative. Normal = sinus rhythm with no conduction, hypertrophy,
    ischaemia, extrasystole, pacing or repolarisation finding and a normal, vertical or horizontal
    axis (LUDB lists no "normal ECG" statement; this is PTB-XL's NORM as far as LUDB can say).
    """
    low = {k: (v or "").lower() for k, v in row.items()}
    rhythms, cond, hyper, isch = low.get("Rhythms", ""), low.get("Conduction abnormalities", ""), \
        low.get("Hypertrophies", ""), low.get("Ischemia", "")
    mi = float("stemi" in isch.replace("nstemi", "") or "scar formation" in isch)
    if not mi and "undefined ischemia/scar" in isch:
        mi = float("nan")
    axis = low.get("Electric axis of the heart", "")
    abnormal = any(low.get(k, "").strip() for k in ("Conduction abnormalities", "Extrasystolies", "Hypertrophies",
                                                   "Cardiac pacing", "Ischemia",
                                                   "Non-specific repolarization abnormalities"))
    normal = float(rhythms.strip() == "sinus rhythm" and not abnormal
                   and any(a in axis for a in ("normal", "vertical", "horizontal")))
    lines = {line.strip() for line in cond.splitlines()}  # "incomplete ..." must not match "complete ..."
    return {
        "af_flutter": float("atrial fibrillation" in rhythms or "atrial flutter" in rhythms),
        "lvh": float("left ventricular hypertrophy" in hyper),
        "lbbb": float("complete left bundle branch block" in lines),
        "rbbb": float("complete right bundle branch block" in lines),
        "mi": mi,
        "avb1": float("i degree av block" in lines),
        "normal": normal,
    }


def read_ludb_screen_table(folder: Path) -> dict[str, dict[str, float]]:
    """``ludb.csv`` -> record id -> screening labels (``ludb_screen_labels``)."""
    return read_ludb_table(folder, ludb_screen_labels)
