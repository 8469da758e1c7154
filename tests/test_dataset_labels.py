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


# --- the 0.3 sources: CinC 2017, PTB-XL, LUDB screening labels ----------------------------------

def _shared(name):
    from conftest import shared_ecg_dir

    return shared_ecg_dir(name)


def test_cinc2017_windows_follow_reference_csv_one_hot():
    from export.datasets.labels import AF_LABELS, read_cinc2017_reference
    from export.datasets.sources import cinc2017_windows

    folder = _shared("cinc2017")
    ref = read_cinc2017_reference(folder)
    ws = cinc2017_windows(folder, 9.0, per_record=1)
    assert ws.label_names == AF_LABELS and len(ws) == len(ref) == len(set(ws.groups))
    assert (ws.labels.sum(axis=1) == 1).all()  # the four classes exclude each other
    code = {"A": "af", "N": "normal", "O": "other_rhythm", "~": "noise"}
    for ref_w, y in zip(ws.refs[:200], ws.labels[:200]):
        name = ref_w.group.split(":", 1)[1]
        assert ws.label_names[int(np.argmax(y))] == code[ref[name]]
        assert ref_w.start == 0 and ref_w.stop == 2700  # 9 s at 300 Hz
    two = cinc2017_windows(folder, 9.0, per_record=2)
    assert len(two) > len(ws)  # a second window wherever the recording is longer than 9 s


def test_ptbxl_screen_labels_come_from_scp_codes_and_group_by_patient():
    from export.datasets.labels import SCREEN_LABELS, ptbxl_screen_labels
    from export.datasets.sources import ptbxl_windows

    assert ptbxl_screen_labels({"NORM": 100.0, "SR": 0.0})["normal"] == 1.0
    assert ptbxl_screen_labels({"AFLT": 0.0})["af_flutter"] == 1.0  # rhythm statements carry likelihood 0
    assert ptbxl_screen_labels({"IRBBB": 100.0})["rbbb"] == 0.0     # incomplete is not complete RBBB
    lab = ptbxl_screen_labels({"ILMI": 50.0, "1AVB": 100.0})
    assert lab["mi"] == 1.0 and lab["avb1"] == 1.0 and lab["normal"] == 0.0
    ws, folds = ptbxl_windows(_shared("ptbxl"))
    assert ws.label_names == SCREEN_LABELS and len(ws) == len(folds)
    assert set(folds) <= set(range(1, 10)) and (folds == 9).sum() > 0
    assert len(set(ws.groups)) < len(ws)  # some patients have two records: grouped, never split


def test_ludb_screen_labels_tell_complete_from_incomplete_bundle_branch_block():
    from export.datasets.labels import ludb_screen_labels

    base = {"Rhythms": "Sinus rhythm", "Electric axis of the heart": "Electric axis of the heart: normal"}
    assert ludb_screen_labels(base)["normal"] == 1.0
    inc = ludb_screen_labels({**base, "Conduction abnormalities": "Incomplete right bundle branch block"})
    assert inc["rbbb"] == 0.0 and inc["normal"] == 0.0
    assert ludb_screen_labels({**base, "Conduction abnormalities": "Complete left bundle branch block"})["lbbb"] == 1.0
    assert ludb_screen_labels({**base, "Conduction abnormalities": "Iii degree av-block"})["avb1"] == 0.0
    assert ludb_screen_labels({**base, "Ischemia": "Scar formation: inferior wall"})["mi"] == 1.0
    assert np.isnan(ludb_screen_labels({**base, "Ischemia": "Undefined ischemia/scar/supp.nstemi: lateral wall"})["mi"])
