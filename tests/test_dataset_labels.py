"""Window sets of the shared folders: labels come from the sources' own annotation files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from export.datasets.labels import LUDB_LABELS, MIT_LABELS, mit_window_labels, read_mit_annotations
from export.datasets.sources import cinc_vt_windows, ludb_windows, mitdb_rhythm_windows, mitdb_vt_windows

pytestmark = pytest.mark.shared_data


def test_mitdb_rhythm_windows_tile_every_record(mitdb_dir):
    ws = mitdb_rhythm_windows(mitdb_dir, 10.0, 10.0)
    assert ws.label_names == MIT_LABELS
    groups = set(ws.groups)
    assert len(groups) == len(list(mitdb_dir.glob("*.atr")))
    for ref in ws.refs:
        assert ref.stop - ref.start == 3600  # 10 s at 360 Hz
    # AF episodes of MIT-BIH DS1 are in records 201 and 203 (the database's rhythm table)
    af_records = {g for g, y in zip(ws.groups, ws.labels[:, 0]) if y}
    assert af_records == {"mitdb:201", "mitdb:203"}
    # every label has positives and negatives over the folder
    for j, name in enumerate(MIT_LABELS):
        assert 0 < ws.labels[:, j].sum() < len(ws), name


def test_ventricular_run_label_follows_the_beats(mitdb_dir):
    checked = 0
    for hea in sorted(mitdb_dir.glob("*.hea")):
        n = int(hea.read_text().split()[3])
        ann = read_mit_annotations(hea, n)
        v_idx = np.nonzero(ann.beat_ventricular)[0]
        if len(v_idx) == 0:
            continue
        s = int(ann.beat_samples[v_idx[0]])
        lab = mit_window_labels(ann, max(0, s - 100), s + 100)
        assert lab["ventricular_ectopy"] == 1.0
        assert lab["ventricular_run"] == 0.0  # one beat is not a run
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_cinc_windows_end_at_the_alarm_with_alarms_csv_labels(cinc_vt_dir):
    ws = cinc_vt_windows(cinc_vt_dir, 10.0)
    with open(cinc_vt_dir / "alarms.csv", newline="") as fh:
        truth = {r["recordname"]: int(r["result"]) for r in csv.DictReader(fh)}
    assert len(ws) == sum((cinc_vt_dir / f"{k}.hea").is_file() for k in truth)
    for ref, y in zip(ws.refs, ws.labels[:, 0]):
        name = ref.group.split(":", 1)[1]
        assert y == truth[name]
        assert ref.stop == 300 * 250 and ref.stop - ref.start == 2500


def test_mitdb_vt_windows_have_runs_only_in_positives(mitdb_dir):
    ws = mitdb_vt_windows(mitdb_dir, 10.0, per_kind=3)
    assert 0 < ws.labels.sum() < len(ws)
    assert len(set(ws.groups)) > 5


def test_ludb_labels_match_the_table(ludb_dir):
    ws = ludb_windows(ludb_dir, 10.0)
    assert ws.label_names == LUDB_LABELS
    with open(ludb_dir / "ludb.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lvh = sum("left ventricular hypertrophy" in r["Hypertrophies"].lower() for r in rows)
    assert ws.labels[:, LUDB_LABELS.index("lvh")].sum() == lvh
    assert len(ws) == len(rows) and len(set(ws.groups)) == len(rows)
