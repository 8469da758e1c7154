"""Window sets of the shared folders: one function per source, labels from the source's own files.

Every function returns a ``WindowSet`` whose groups are records (MIT-BIH DS1 and LUDB have one
record per patient; the CinC 2015 data do not say which alarms share a patient, so a record is
the finest grouping available), so splits never put one record's windows on two sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge_ecg.errors import RecordError
from export.datasets.labels import (
    AF_LABELS, LUDB_LABELS, MIT_LABELS, SCREEN_LABELS, cinc2017_labels, longest_ventricular_run, mit_window_labels,
    read_cinc2017_reference, read_cinc_alarms, read_ludb_screen_table, read_ludb_table, read_mit_annotations,
    read_ptbxl_table,
)
from export.datasets.windows import WindowRef, WindowSet


def _header_info(hea: Path) -> tuple[float, int]:
    """(fs, n_samples) from the first line of a WFDB header, without reading the signals."""
    try:
        first = hea.read_text(errors="replace").splitlines()[0].split()
        return float(first[2].split("/")[0]), int(first[3])
    except (IndexError, ValueError, OSError) as exc:
        raise RecordError(hea, f"cannot read fs and length from the header's record line ({exc})") from None


def _annotated_records(folder: Path):
    """(header, fs, n_samples, annotations) of every record under ``folder`` that has a ``.atr``."""
    for hea in wfdb_records(folder):
        if hea.with_suffix(".atr").is_file():
            fs, n = _header_info(hea)
            yield hea, fs, n, read_mit_annotations(hea, n)


def wfdb_records(folder: Path) -> list[Path]:
    """Every WFDB header under ``folder`` (recursive), sorted; an empty folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(folder, "not a folder")
    found = sorted(p for p in folder.rglob("*.hea"))
    if not found:
        raise RecordError(folder, "no WFDB records (*.hea) under it")
    return found


def mitdb_rhythm_windows(folder: Path, window_s: float = 10.0, hop_s: float = 10.0) -> WindowSet:
    """Windows tiling each MIT-BIH record, labelled af / ventricular_ectopy / ventricular_run / artifact."""
    refs, labels = [], []
    for hea, fs, n, ann in _annotated_records(folder):
        w, h = int(round(window_s * fs)), int(round(hop_s * fs))
        for start in range(0, n - w + 1, h):
            lab = mit_window_labels(ann, start, start + w)
            refs.append(WindowRef(str(hea), start, start + w, f"mitdb:{hea.stem}", "mitdb-ds1"))
            labels.append([lab[k] for k in MIT_LABELS])
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), MIT_LABELS)


def cinc_vt_windows(folder: Path, window_s: float = 10.0, alarm_s: float = 300.0,
                    end_offsets_s: Sequence[float] = (0.0,)) -> WindowSet:
    """CinC 2015 ventricular-tachycardia alarms: the ``window_s`` ending at the alarm (300 s).

    ``end_offsets_s`` adds windows ending that many seconds before the alarm (training
    augmentation: the monitor's trigger lies somewhere in the last seconds, so a window ending
    1-4 s earlier still shows the event); evaluation uses only offset 0.
    """
    alarms = read_cinc_alarms(folder)
    refs, labels = [], []
    for hea in wfdb_records(folder):
        if hea.stem not in alarms:
            continue
        fs, n = _header_info(hea)
        w = int(round(window_s * fs))
        for off in end_offsets_s:
            stop = int(round((alarm_s - off) * fs))
            if stop > n or stop - w < 0:
                raise RecordError(hea, f"window ending at {alarm_s - off} s does not fit {n} samples at {fs} Hz")
            refs.append(WindowRef(str(hea), stop - w, stop, f"cinc:{hea.stem}", "cinc2015-vt" if off == 0 else "cinc2015-vt-shift"))
            labels.append([float(alarms[hea.stem])])
    if not refs:
        raise RecordError(folder, "no record of alarms.csv found beside it")
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), ("true_alarm",))


def mitdb_vt_windows(folder: Path, window_s: float = 10.0, per_kind: int = 6, run_beats: int = 4) -> WindowSet:
    """Alarm-like windows from MIT-BIH for the VT triage task.

    Positives: a window ending 1 s after the ``run_beats``-th beat of every ventricular run of at
    least ``run_beats`` consecutive ventricular beats (where a monitor would alarm). Hard
    negatives: windows ending 1 s after an isolated ventricular beat or couplet, and windows ending
    inside noise episodes (the two causes of false VT alarms). At most ``per_kind`` of each per
    record, spread evenly over the record, so no single record dominates.
    """
    refs, labels = [], []
    for hea, fs, n, ann in _annotated_records(folder):
        w = int(round(window_s * fs))
        pos_ends, ect_ends = [], []
        v = ann.beat_ventricular
        run = 0
        for i, is_v in enumerate(v):
            run = run + 1 if is_v else 0
            if run == run_beats:
                pos_ends.append(int(ann.beat_samples[i] + fs))
            if is_v and (i + 1 >= len(v) or not v[i + 1]) and 0 < run < 3:
                ect_ends.append(int(ann.beat_samples[i] + fs))
        noise_ends = [int((a + b) // 2) for a, b in ann.noise if b - a > fs]
        kinds = ((pos_ends, 1.0), (ect_ends, 0.0), (noise_ends, 0.0))
        for ends, y in kinds:
            ends = [e for e in ends if w <= e <= n]
            if y == 0.0:  # a hard negative must not contain a run itself
                ends = [e for e in ends if longest_ventricular_run(ann, e - w, e) < 3]
            if len(ends) > per_kind:
                ends = [ends[int(i)] for i in np.linspace(0, len(ends) - 1, per_kind)]
            for e in ends:
                refs.append(WindowRef(str(hea), e - w, e, f"mitdb:{hea.stem}", "mitdb-ds1"))
                labels.append([y])
    return WindowSet(refs, np.asarray(labels, dtype=np.float32).reshape(-1, 1), ("true_alarm",))


def ludb_windows(folder: Path, window_s: float = 10.0) -> WindowSet:
    """The first ``window_s`` of every LUDB 12-lead record with its ``ludb.csv`` diagnoses."""
    table = read_ludb_table(folder)
    refs, labels = [], []
    for hea in wfdb_records(Path(folder) / "data" if (Path(folder) / "data").is_dir() else folder):
        if hea.stem not in table:
            continue
        fs, n = _header_info(hea)
        w = min(n, int(round(window_s * fs)))
        refs.append(WindowRef(str(hea), 0, w, f"ludb:{hea.stem}", "ludb"))
        labels.append([table[hea.stem][k] for k in LUDB_LABELS])
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), LUDB_LABELS)


def unlabeled_windows(folders: Iterable[Path], window_s: float = 10.0, per_record: int = 20,
                      min_leads: int = 1, hop_s: float | None = None) -> WindowSet:
    """Unlabeled windows for masked-image pretraining: up to ``per_record`` evenly spaced per record,
    or, with ``hop_s``, one every ``hop_s`` seconds."""
    refs = []
    for folder in folders:
        for hea in wfdb_records(folder):
            fs, n = _header_info(hea)
            w = int(round(window_s * fs))
            if n < w:
                continue
            if hop_s:
                starts = np.arange(0, n - w + 1, max(1, int(round(hop_s * fs))), dtype=np.int64)
            else:
                starts = np.unique(np.linspace(0, n - w, per_record).astype(np.int64))
            for s in starts:
                refs.append(WindowRef(str(hea), int(s), int(s) + w, f"{Path(folder).name}:{hea.stem}", Path(folder).name))
    return WindowSet(refs, np.zeros((len(refs), 0), dtype=np.float32), ())


def window_starts(n: int, w: int, per_record: int) -> list[int]:
    """Up to ``per_record`` window starts spread evenly over ``n`` samples (first and last included)."""
    if n < w:
        return []
    return sorted({int(s) for s in np.linspace(0, n - w, max(1, per_record)).round()})


def cinc2017_windows(folder: Path, window_s: float = 9.0, per_record: int = 3) -> WindowSet:
    """CinC 2017 recordings (one lead, 300 Hz, 9-61 s), up to ``per_record`` windows each, spread
    over the recording, labelled one-hot N/A/O/~ from ``REFERENCE.csv``. Every recording is its
    own group (the challenge data say nothing of patients; AliveCor users are mostly one record)."""
    ref = read_cinc2017_reference(folder)
    refs, labels = [], []
    for hea in wfdb_records(folder):
        if hea.stem not in ref:
            continue
        fs, n = _header_info(hea)
        w = int(round(window_s * fs))
        lab = cinc2017_labels(ref[hea.stem])
        for start in window_starts(n, w, per_record):
            refs.append(WindowRef(str(hea), start, start + w, f"cinc2017:{hea.stem}", "cinc2017"))
            labels.append([lab[k] for k in AF_LABELS])
    if not refs:
        raise RecordError(folder, "no recording of REFERENCE.csv found beside it")
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), AF_LABELS)


def mitdb_af_windows(folder: Path, window_s: float = 9.0, hop_s: float = 9.0, non_af_hop_s: float = 45.0) -> WindowSet:
    """MIT-BIH windows for the ``af`` task: every AF/flutter window (hop ``hop_s``) and a sparser
    tiling of the rest (hop ``non_af_hop_s``, so 20 AF-free records do not swamp 2 AF ones).
    Only ``af`` is known here (1 = AF/flutter for >= half the window); the CinC 2017 classes
    normal / other rhythm / noise are NaN (unknown), not negative."""
    refs, labels = [], []
    for hea, fs, n, ann in _annotated_records(folder):
        w, h = int(round(window_s * fs)), int(round(hop_s * fs))
        sparse = max(1, int(round(non_af_hop_s / hop_s)))
        for k, start in enumerate(range(0, n - w + 1, h)):
            af = mit_window_labels(ann, start, start + w)["af"]
            if not af and k % sparse:
                continue
            refs.append(WindowRef(str(hea), start, start + w, f"mitdb:{hea.stem}", "mitdb-ds1"))
            labels.append([af] + [float("nan")] * (len(AF_LABELS) - 1))
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), AF_LABELS)


def ptbxl_windows(folder: Path, window_s: float = 10.0) -> tuple[WindowSet, np.ndarray]:
    """PTB-XL 12-lead records (the first ``window_s``) with the screening labels of their SCP codes;
    groups are patients. Also returns each window's PTB-XL stratified fold (1-9 here)."""
    table = read_ptbxl_table(folder)
    refs, labels, folds = [], [], []
    for hea in wfdb_records(Path(folder) / "records500" if (Path(folder) / "records500").is_dir() else folder):
        row = table.get(hea.stem)
        if row is None:
            continue
        fs, n = _header_info(hea)
        w = min(n, int(round(window_s * fs)))
        refs.append(WindowRef(str(hea), 0, w, f"ptbxl:patient{row['patient']}", "ptbxl"))
        labels.append([row["labels"][k] for k in SCREEN_LABELS])
        folds.append(row["fold"])
    if not refs:
        raise RecordError(folder, "no record of ptbxl_database.csv found under it")
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), SCREEN_LABELS), np.asarray(folds, dtype=np.int64)


def ludb_screen_windows(folder: Path, window_s: float = 10.0) -> WindowSet:
    """The first ``window_s`` of every LUDB record with the screening labels (``ludb_screen_labels``)."""
    table = read_ludb_screen_table(folder)
    refs, labels = [], []
    for hea in wfdb_records(Path(folder) / "data" if (Path(folder) / "data").is_dir() else folder):
        if hea.stem not in table:
            continue
        fs, n = _header_info(hea)
        refs.append(WindowRef(str(hea), 0, min(n, int(round(window_s * fs))), f"ludb:{hea.stem}", "ludb"))
        labels.append([table[hea.stem][k] for k in SCREEN_LABELS])
    return WindowSet(refs, np.asarray(labels, dtype=np.float32), SCREEN_LABELS)
