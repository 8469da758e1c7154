"""``edge-ecg screen`` on what clinics and archives really hold: vendor files, a folder of every kind of
bad input, patient identifiers, and a Dask cluster that loses a worker mid-run.

The bundle is the tiny untrained test bundle of ``test_screen_cli`` (machinery, not accuracy).
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.vendor_records import PATIENT, dicom_ecg, write_dicom_from, write_ishne
from helpers.records import copy_wfdb, write_wfdb_uv
from helpers.screening import LABELS

pytestmark = pytest.mark.shared_data
REPO = Path(__file__).resolve().parents[1]


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return {r["record"]: r for r in csv.DictReader(fh)}


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_ecg", "screen", *args, "--threads", "1", "--no-progress"]


def _run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *_cmd(*args)], cwd=REPO, capture_output=True, text=True, timeout=600)


def _without_root_override() -> tuple[str, ...]:
    """As root, file permissions do not stop a read; run the command without that capability
    (util-linux ``setpriv``) so that 'permission denied' is real."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}")


def test_vendor_files_screen_like_their_originals_and_identifiers_stay_out(tiny_screen_bundle, ludb_dir, tmp_path):
    """A real DICOM ECG, a DICOM written by pydicom and an ISHNE file written by ishneholterlib go
    through ``edge-ecg screen``; the copies of LUDB records score like the WFDB originals, and no
    output (results.csv, report.html, images) carries the patient's name, id or birth date unless
    --keep-identifiers is given."""
    from edge_ecg.records import read_record

    folder = tmp_path / "cart-exports"
    folder.mkdir()
    shutil.copy(dicom_ecg(), folder / "mortara-eli250.dcm")
    for i in (7, 11):
        copy_wfdb(ludb_dir / "data" / f"{i}.hea", folder / "wfdb")
    (folder / "dicom").mkdir()
    (folder / "holter").mkdir()
    write_dicom_from(read_record(ludb_dir / "data" / "7.hea"), folder / "dicom" / "IM000007")
    write_ishne(read_record(ludb_dir / "data" / "11.hea"), folder / "holter" / "11.ecg")
    out = tmp_path / "out"
    proc = _run(str(folder), "--bundle", str(tiny_screen_bundle), "--out", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out)
    assert set(rows) == {"mortara-eli250.dcm", "wfdb/7", "wfdb/11", "dicom/IM000007", "holter/11.ecg"}
    assert all(r["status"] == "screened" for r in rows.values()), rows
    assert "resampled from 1000 Hz to 500 Hz" in rows["mortara-eli250.dcm"]["quality_notes"]
    for copy, original in (("dicom/IM000007", "wfdb/7"), ("holter/11.ecg", "wfdb/11")):
        for n in LABELS:  # same ECG within 1.25 uV (DICOM) or 1 uV (ISHNE): the same image, the same probability
            assert abs(float(rows[copy][f"prob_{n}"]) - float(rows[original][f"prob_{n}"])) < 0.02
    needles = [PATIENT["id"], "Testpatient", "1945", "642341", "19710123", "1971-01-23"]
    outputs = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in outputs) or not any(r["flagged"] == "yes" for r in rows.values())
    for p in outputs:
        data = p.read_bytes()
        assert not [n for n in needles if n.encode() in data], p
    kept = tmp_path / "kept"
    proc = _run(str(folder), "--bundle", str(tiny_screen_bundle), "--out", str(kept), "--workers", "1", "--keep-identifiers")
    assert proc.returncode == 0, proc.stderr
    rows = _rows(kept)
    assert rows["dicom/IM000007"]["patient_id"] == PATIENT["id"] and rows["holter/11.ecg"]["patient_birth_date"] == "1945-02-03"
    assert rows["mortara-eli250.dcm"]["patient_id"] == "642341"


def _bad_input_folder(folder: Path, ludb_dir: Path) -> dict[str, str]:
    """Every kind of bad input beside good records; returns record name -> expected words of its row."""
    from edge_ecg.records import read_record, write_csv

    src = ludb_dir / "data"
    copy_wfdb(src / "1.hea", folder, "good1")
    rec = read_record(src / "2.hea")
    expect = {"good1": "screened"}
    # existing cases
    (folder / "corrupt.hea").write_bytes(b"\x89garbage \xff\xfe not a header\n" * 3)
    (folder / "empty.hea").write_bytes(b"")
    (folder / "empty.xml").write_bytes(b"")
    write_wfdb_uv(folder / "short", rec.signals[:2500], 500.0, rec.leads)
    expect.update({"corrupt": "", "empty": "empty", "empty.xml": "not recognised as an ECG record",
                   "short": "shorter than the bundle's 10 s window"})
    # junk EDF: its bytes must not reach the reason
    (folder / "junk.edf").write_bytes(b"0       " + bytes(range(256)) * 8)
    expect["junk.edf"] = "cannot read EDF"
    # a folder named like a record, a dangling link, a self loop, a folder link back up the tree
    (folder / "x.hea").mkdir()
    (folder / "gone.edf").symlink_to(folder / "deleted-long-ago.edf")
    (folder / "loop.xml").symlink_to(folder / "loop.xml")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)
    expect.update({"x.hea": "is a folder, not a file", "gone.edf": "broken link", "loop.xml": "link loop",
                   "sub/up": "link loop"})
    # unreadable: a file and a folder without read permission
    write_csv(rec, folder / "locked.csv")
    (folder / "locked.csv").chmod(0)
    (folder / "lockeddir").mkdir()
    copy_wfdb(src / "3.hea", folder / "lockeddir", "hidden")
    (folder / "lockeddir").chmod(0)
    expect.update({"locked.csv": "permission denied", "lockeddir": "permission denied"})
    # a WFDB signal file without its header
    shutil.copy(src / "4.dat", folder / "orphan.dat")
    expect["orphan.dat"] = "without its .hea header"
    # rates: 1e9 Hz refused; 62.5 Hz screened with a bandwidth note
    (folder / "gigahertz.csv").write_text("# fs: 1e9\nI,II\n" + "1,2\n" * 100)
    expect["gigahertz.csv"] = "above 20000 Hz"
    from scipy.signal import resample_poly

    slow = resample_poly(rec.signals.astype(np.float64), 1, 8, axis=0)
    slow_rec = type(rec)(signals=slow, fs=62.5, leads=rec.leads, name="slow")
    write_csv(slow_rec, folder / "slow62.csv")
    expect["slow62.csv"] = "screened"
    # a Latin-1 CSV and a time_s column with 6 decimals at 360 Hz
    t = np.arange(3600) / 360.0
    body = "".join(f"{x:.6f};" + ";".join(f"{v:.1f}" for v in row) + "\n"
                   for x, row in zip(t, resample_poly(rec.signals.astype(np.float64), 18, 25, axis=0)[:3600]))
    header = "time_s;" + ";".join(f"{lead} (\u00b5V)" for lead in rec.leads) + "\n"
    (folder / "latin360.csv").write_bytes(("# Export Klinikum M\u00fcnchen\n" + header + body).encode("latin-1"))
    expect["latin360.csv"] = "screened"
    # two channels named alike (SVDB): loads as ECG1/ECG2, not screened for want of 12 leads
    write_wfdb_uv(folder / "svdb", rec.signals[:, :2], 500.0, ("ECGA", "ECGB"))
    hea = folder / "svdb.hea"
    hea.write_text(hea.read_text().replace(" ECGA\n", " ECG\n").replace(" ECGB\n", " ECG\n"))
    expect["svdb"] = "record has 2 lead(s): ECG1, ECG2"
    return expect


def test_bad_input_folder_lists_every_path(tiny_screen_bundle, ludb_dir, tmp_path):
    folder = tmp_path / "clinic"
    folder.mkdir()
    expect = _bad_input_folder(folder, ludb_dir)
    listed = tmp_path / "list.txt"
    listed.write_text(f"{folder / 'good1.hea'}\n{tmp_path / 'typo' / 'nope.edf'}\n")
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    try:
        proc = _run(str(folder), "--bundle", str(tiny_screen_bundle), "--out", str(out), "--input-list", str(listed),
                    prefix=_without_root_override())
    finally:
        (folder / "lockeddir").chmod(0o755)
        (folder / "locked.csv").chmod(0o644)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(out)
    missing = [k for k in expect if k not in rows]
    assert not missing, (missing, sorted(rows))
    for name, words in expect.items():
        row = rows[name]
        if words == "screened":
            assert row["status"] == "screened", row
            continue
        assert row["status"] == "not screened" and row["reason"], row
        assert words in row["reason"], (name, row["reason"])
        assert row["reason"].isprintable() and "\\x" not in row["reason"] and "b'" not in row["reason"]
    assert "sampled at 62.5 Hz" in rows["slow62.csv"]["quality_notes"]
    assert "resampled from 360 Hz to 500 Hz" in rows["latin360.csv"]["quality_notes"]
    assert "read as Latin-1" in rows["latin360.csv"]["quality_notes"]
    listed_missing = [r for r in rows.values() if "named in the input list" in r["reason"]]
    assert len(listed_missing) == 1 and listed_missing[0]["source_file"].endswith("nope.edf")
    page = (out / "report.html").read_text()
    for name in expect:
        assert f">{name}<" in page, name


def _wait_rows(csv_path: Path, n: int, proc: subprocess.Popen, limit_s: float = 300) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if csv_path.is_file() and csv_path.read_text().count("\n") >= n + 1:
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_dask_scheduler_survives_a_killed_worker_and_resumes(tiny_screen_bundle, ludb_dir, tmp_path):
    """``--scheduler`` against a real local Dask cluster (2 worker processes, 1 thread each): a
    worker is SIGKILLed mid-run; Dask moves its tasks, every record is screened once with the
    same probabilities as in a single process, and a re-run on the cluster screens nothing again."""
    distributed = pytest.importorskip("distributed")

    folder = tmp_path / "archive"
    for i in range(1, 25):
        copy_wfdb(ludb_dir / "data" / f"{i}.hea", folder / f"ward{i % 3}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  scheduler_port=0, silence_logs=40) as cluster, distributed.Client(cluster) as client:
        out = tmp_path / "dask-out"
        proc = subprocess.Popen(_cmd(str(folder), "--bundle", str(tiny_screen_bundle), "--out", str(out), "--scheduler",
                                     cluster.scheduler_address, "--chunk-size", "2", "--batch-size", "2"),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_rows(out / "results.csv", 4, proc)
        assert proc.poll() is None, "the run finished before a worker could be killed"
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert "Dask cluster at tcp://" in stdout
        rows = _rows(out)
        assert len(rows) == 24 and all(r["status"] == "screened" for r in rows.values())
        with open(out / "results.csv") as fh:
            assert sum(1 for _ in fh) == 25  # one row per record: nothing screened twice into the output
        again = _run(str(folder), "--bundle", str(tiny_screen_bundle), "--out", str(out), "--scheduler", cluster.scheduler_address)
        assert again.returncode == 0 and "screened 0 record(s)" in again.stdout and "24 already" in again.stdout
    single = tmp_path / "single"
    proc = _run(str(folder), "--bundle", str(tiny_screen_bundle), "--out", str(single), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    ref = _rows(single)
    for name, row in rows.items():
        for n in LABELS:
            assert abs(float(row[f"prob_{n}"]) - float(ref[name][f"prob_{n}"])) < 1e-5, (name, n)
