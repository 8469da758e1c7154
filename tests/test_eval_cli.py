"""``edge-ecg eval ... --json``: one JSON object with the figures (fractions), from a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.shared_data


def _run(*args, cwd=None) -> dict:
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "eval", *map(str, args), "--json"], capture_output=True, text=True,
                         timeout=600, cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_eval_stream_json_on_the_noise_stress_excerpts(noise_stress_dir):
    d = _run("stream", noise_stress_dir)
    assert 0.2 < d["hours"] < 0.3  # seven 2-minute excerpts
    vt = d["conditions"]["ventricular_tachycardia"]
    for key in ("raised", "true", "false", "false_per_hour", "missed"):
        assert key in vt
    assert vt["true"] == 0 and vt["raised"] == vt["false"]  # no VT in record 118 or the ST-T excerpts
    assert vt["false_per_hour"] == pytest.approx(vt["false"] / d["hours"], rel=0.01)
    lo, hi = vt["false_per_hour_ci95"]  # record bootstrap
    assert lo <= vt["false_per_hour"] <= hi
    assert sum(d["record_hours"].values()) == pytest.approx(d["hours"], rel=0.01)
    assert set(d["unannotated_records"]) == {"e0103", "e0110", "e0124"}


def test_eval_qrs_and_noise_stress_json_are_fractions(mitdb_dir, noise_stress_dir):
    d = _run("qrs", mitdb_dir, "--records", "115", "101", "--no-xqrs")
    g = d["gross"]
    assert set(g) >= {"se", "ppv"} and 0.99 <= g["se"] <= 1.0 and 0.99 <= g["ppv"] <= 1.0
    assert g["se_ci95"][0] <= g["se"] <= g["se_ci95"][1] and g["ppv_ci95"][0] <= g["ppv"] <= g["ppv_ci95"][1]
    assert d["records"]["115"]["beats"] > 1900
    d = _run("noise-stress", noise_stress_dir, "--no-xqrs")
    assert {r["snr_db"] for r in d["records"].values()} == {24, 12, 6, 0}
    assert all(0 <= r["se"] <= 1 and 0 <= r["ppv"] <= 1 for r in d["records"].values())


@pytest.fixture(scope="module")
def small_cinc(cinc_vt_dir, tmp_path_factory):
    """Ten CinC 2015 alarms (3 true) in a folder of their own, the record files linked."""
    from edge_ecg.eval.alarm_eval import read_truth

    truth = read_truth(cinc_vt_dir)
    names = [n for n, t in sorted(truth.items()) if t][:3] + [n for n, t in sorted(truth.items()) if not t][:7]
    d = tmp_path_factory.mktemp("cinc10")
    (d / "alarms.csv").write_text("recordname,result\n" + "".join(f"{n},{int(truth[n])}\n" for n in names))
    for n in names:
        for f in cinc_vt_dir.glob(f"{n}.*"):
            (d / f.name).symlink_to(f)
    return d


def test_eval_alarms_json_with_the_triage_bundle(small_cinc):
    from conftest import REPO

    bundle = REPO / "bundles" / "vt-triage"
    if not (bundle / "bundle.toml").is_file():
        pytest.skip("the committed vt-triage bundle is absent")
    d = _run("alarms", small_cinc, "--whole", "--bundle", bundle)
    for key in ("tp", "fn", "fp", "tn", "tpr", "tnr", "score"):
        assert key in d
    assert d["tp"] + d["fn"] == 3 and d["fp"] + d["tn"] == 7
    rows = d["triage"]["rows"]
    assert set(rows) == {"detector alone", "model alone (window ending at the alarm)", "daemon: alarm raised (any priority)",
                         "daemon: alarm at high priority after triage", "daemon with annotate_only = false: high priority"}
    # the daemon raises exactly what the detector raises; the shipped config only annotates
    assert rows["daemon: alarm raised (any priority)"] == rows["detector alone"]
    assert d["triage"]["limits"]["annotate_only"] is True
    assert rows["daemon: alarm at high priority after triage"] == rows["detector alone"]
    assert all(0 <= r["p_true_at_alarm"] <= 1 for r in d["triage"]["records"])


def test_eval_alarms_cv_json(small_cinc, tmp_path):
    d = _run("alarms", small_cinc, "--cv", "--folds", "2", "--cache", tmp_path, "--seeds", "3")
    assert {"tp", "fn", "fp", "tn", "tpr", "tnr", "score"} <= set(d)
    assert set(d["rows"]) == {"raise every alarm", "previous detector (beat rule alone)", "evidence, ECG only (out of fold)",
                              "evidence, ECG + pulse (out of fold)", "shipped limits, no pulse channel (oof)"}
    assert d["rows"]["raise every alarm"]["tnr"] == 0.0
    assert len(list(tmp_path.rglob("*.json"))) == 10  # one cached log per record
    # the out-of-fold rows over three fold assignments; seed 0 is the table's own
    spread = d["seed_spread"]
    assert set(spread) == set(d["rows"]) - {"raise every alarm", "previous detector (beat rule alone)"}
    for row, s in spread.items():
        assert s["seeds"] == [0, 1, 2]
        for stat in ("tpr", "tnr", "score"):
            assert s[stat]["min"] <= d["rows"][row][stat] <= s[stat]["max"], (row, stat)
            assert s[stat]["min"] <= s[stat]["mean"] <= s[stat]["max"]
    bad = subprocess.run([sys.executable, "-m", "edge_ecg", "eval", "alarms", str(small_cinc), "--cv", "--seeds", "0", "--cache",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--seeds" in bad.stderr and "at least 1" in bad.stderr


def test_eval_census_json_counts_alarms_per_record_class(ecg_root, tmp_path):
    # four CinC 2017 strips linked into a folder with their REFERENCE.csv lines: two normal strips
    # that begin with a large transient (once: asystole at 4 s), the broad complexes at 78 bpm of
    # an "other rhythm" strip (once: VF for 20 s), and a strip that is not in REFERENCE.csv
    cinc = ecg_root / "cinc2017"
    if not cinc.is_dir():
        pytest.skip("cinc2017 not present")
    for name in ("A04012", "A08327", "A00593", "A00001"):
        for ext in (".hea", ".mat"):
            (tmp_path / f"{name}{ext}").symlink_to(cinc / f"{name}{ext}")
    (tmp_path / "REFERENCE.csv").write_text("A04012,N\nA08327,N\nA00593,O\n")
    d = _run("census", tmp_path)
    assert d["records"] == 3 and set(d["classes"]) == {"N", "O"}  # A00001 is not named: not streamed
    n, o = d["classes"]["N"], d["classes"]["O"]
    assert n["records"] == 2 and 0.015 < n["hours"] < 0.02  # two 30 s strips
    assert n["conditions"]["asystole"] == {"raised": 0, "records": 0, "per_hour": 0.0}
    assert o["conditions"]["ventricular_fibrillation"]["raised"] == 0
    assert set(n["conditions"]) >= {"asystole", "ventricular_tachycardia", "ventricular_fibrillation"}


def test_eval_census_refuses_a_bad_reference_line_and_a_partial_write(tmp_path):
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002\n")
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "eval", "census", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "REFERENCE.csv: line 2: expected 'record,class'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "eval", "census", str(tmp_path), "--limit", "3", "--write"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "--limit" in out.stderr
