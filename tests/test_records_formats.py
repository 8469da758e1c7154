"""EDF, HL7 aECG and CSV: round trips from real WFDB records, and bad input named clearly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil

import numpy as np
import pytest

from edge_ecg.records import (
    Record, RecordError, ensure_12_leads, find_records, read_csv, read_record, resample, write_aecg, write_csv,
    write_edf, write_record,
)
from helpers.records import CART_AECG

START = dt.datetime(2024, 5, 1, 8, 30, 0)


def _with_start(rec: Record) -> Record:
    return dataclasses.replace(rec, start_time=START)


def assert_same(back: Record, orig: Record, tol: np.ndarray | float) -> None:
    assert back.leads == orig.leads and back.fs == orig.fs and back.signals.shape == orig.signals.shape
    assert back.signals.dtype == np.float32
    assert np.array_equal(np.isnan(back.signals), np.isnan(orig.signals))
    err = np.nanmax(np.abs(back.signals.astype(np.float64) - orig.signals), axis=0)
    assert np.all(err <= tol), (err, tol)


def edf_resolution(rec: Record) -> np.ndarray:
    """Half a digital step of write_edf: each lead's own range (whole uV, widened by 1) over 65535 steps."""
    return (np.nanmax(rec.signals, axis=0) - np.nanmin(rec.signals, axis=0) + 3).astype(np.float64) / 65535 / 2 + 1e-3


@pytest.mark.parametrize("ext", [".edf", ".xml", ".csv"])
def test_round_trip_ludb(ludb_dir, tmp_path, ext):
    orig = _with_start(read_record(ludb_dir / "data" / "1.hea"))
    back = read_record(write_record(orig, tmp_path / f"ludb1{ext}"))
    # format resolutions: EDF 16 bit over each lead's range; aECG 0.5 uV digits; CSV 0.001 uV
    tol = {".edf": edf_resolution(orig), ".xml": 0.25 + 1e-3, ".csv": 0.0005 + 1e-3}[ext]
    assert_same(back, orig, tol)
    assert back.start_time == START
    assert 100 < np.ptp(back.lead("II")) < 10000


def test_edf_round_trip_every_ludb_record(ludb_dir, tmp_path):
    heas = sorted((ludb_dir / "data").glob("*.hea"))
    assert len(heas) >= 150
    for hea in heas:
        orig = read_record(hea)
        back = read_record(write_edf(orig, tmp_path / "x.edf"))
        assert_same(back, orig, edf_resolution(orig))


def test_round_trip_monitor_records_with_gaps_and_odd_rates(mitdb_dir, cinc_vt_dir, tmp_path):
    mit = _with_start(read_record(mitdb_dir / "101").slice(0, 360 * 60))
    for ext in (".edf", ".xml", ".csv"):
        back = read_record(write_record(mit, tmp_path / f"mit{ext}"))
        assert_same(back, mit, {".edf": edf_resolution(mit), ".xml": 0.251, ".csv": 0.0015}[ext])
    gappy = read_record(cinc_vt_dir / "v176s")  # a real monitor record with NaN stretches
    assert np.isnan(gappy.signals).any()
    for ext in (".edf", ".csv"):
        back = read_record(write_record(gappy, tmp_path / f"gappy{ext}"))
        assert_same(back, gappy, {".edf": edf_resolution(gappy), ".csv": 0.0015}[ext])
    with pytest.raises(RecordError, match=r"gappy\.xml.*cannot hold gaps"):
        write_aecg(gappy, tmp_path / "gappy.xml")


def test_edf_odd_length_pads_to_whole_data_records(tmp_path):
    rec = Record(np.arange(1001, dtype=np.float32)[:, None], 360.0, ("II",), name="odd")
    back = read_record(write_edf(rec, tmp_path / "odd.edf"))
    assert back.n_samples == 1001 and np.allclose(back.signals, rec.signals, atol=0.01)


def test_aecg_is_hl7_v3_structure(tmp_path):
    import xml.etree.ElementTree as ET

    rec = Record(np.zeros((500, 2), np.float32), 500.0, ("II", "aVR"), name="x", start_time=START)
    root = ET.parse(write_aecg(rec, tmp_path / "x.xml")).getroot()
    ns = {"h": "urn:hl7-org:v3"}
    assert root.tag == "{urn:hl7-org:v3}AnnotatedECG"
    seqs = root.findall("h:component/h:series/h:component/h:sequenceSet/h:component/h:sequence", ns)
    codes = [s.find("h:code", ns).get("code") for s in seqs]
    assert codes == ["TIME_ABSOLUTE", "MDC_ECG_LEAD_II", "MDC_ECG_LEAD_AVR"]
    assert seqs[0].find("h:value/h:increment", ns).get("value") == "0.002"
    assert root.find("h:componentOf/h:timepointEvent", ns) is not None
    assert root.find("h:effectiveTime/h:low", ns).get("value") == "20240501083000.000"


def test_csv_convention_and_headerless(tmp_path, noise_stress_dir):
    p = tmp_path / "cart.csv"
    p.write_text("# fs: 250\ntime_s;MLII (mV);V1 [uV]\n0;1.5;10\n0.004;;20\n0.008;-0.5;30\n")
    rec = read_csv(p)
    assert rec.leads == ("II", "V1") and rec.fs == 250.0
    assert rec.signals[0, 0] == 1500.0 and np.isnan(rec.signals[1, 0]) and rec.signals[2, 1] == 30.0
    t = tmp_path / "timed.csv"
    t.write_text("time_s,II\n0.000,1\n0.002,2\n0.004,3\n")
    assert read_record(t).fs == pytest.approx(500.0)
    raw = read_csv(noise_stress_dir / "118e24.csv", fs=360.0, leads=("II",), unit="mV")
    assert raw.signals.shape == (360 * 120, 1) and raw.fs == 360.0
    with pytest.raises(RecordError, match=r"118e24\.csv.*no header"):
        read_record(noise_stress_dir / "118e24.csv")


BAD_CSV = {
    "collision.csv": ("# fs: 250\nII,MLII\n1,2\n", "collision"),
    "nanlead.csv": ("# fs: 250\nI,II\n1,\n2,\n", "II hold no valid sample"),
    "zerofs.csv": ("# fs: 0\nII\n1\n2\n", "sampling rate must be positive"),
    "nofs.csv": ("II\n1\n2\n", "no sampling rate"),
    "truncated.csv": ("# fs: 250\nI,II\n1,2\n3\n", "line 4: 1 cells"),
    "text.csv": ("# fs: 250\nI,II\n1,x\n", "'x' is not a number"),
    "unit.csv": ("# fs: 250\nII (mmHg)\n1\n", "not a voltage"),
    "empty.csv": ("", "empty file"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_bad_csv_names_file_and_problem(tmp_path, name):
    text, problem = BAD_CSV[name]
    (tmp_path / name).write_text(text)
    with pytest.raises(RecordError, match=problem) as info:
        read_record(tmp_path / name)
    assert name in str(info.value)


def test_bad_files_of_every_format(tmp_path, ludb_dir):
    rec = read_record(ludb_dir / "data" / "2.hea")
    for ext in (".edf", ".xml", ".csv", ".hea"):
        with pytest.raises(RecordError, match="no such"):
            read_record(tmp_path / f"missing{ext}")
    for ext in (".edf", ".xml", ".csv", ".hea"):
        (tmp_path / f"empty{ext}").write_bytes(b"")
        with pytest.raises(RecordError, match=rf"empty{ext}: empty file"):
            read_record(tmp_path / f"empty{ext}")
    with pytest.raises(RecordError, match=r"scan\.pdf: unknown ECG format"):
        (tmp_path / "scan.pdf").write_bytes(b"%PDF")
        read_record(tmp_path / "scan.pdf")
    # truncated files
    edf = write_edf(rec, tmp_path / "cut.edf")
    os.truncate(edf, edf.stat().st_size - 5000)
    with pytest.raises(RecordError, match=r"cut\.edf: cannot read EDF"):
        read_record(edf)
    xml = write_aecg(rec, tmp_path / "cut.xml")
    os.truncate(xml, xml.stat().st_size // 2)
    with pytest.raises(RecordError, match=r"cut\.xml: not well-formed XML"):
        read_record(xml)
    for f in ("2.hea", "2.dat"):
        shutil.copy(ludb_dir / "data" / f, tmp_path / f)
    os.truncate(tmp_path / "2.dat", 48000)
    with pytest.raises(RecordError, match=r"2\.dat: signal file is truncated"):
        read_record(tmp_path / "2.hea")
    # aECG: zero sampling interval, a short lead, a DTD
    good = (tmp_path / "cut.xml").with_name("good.xml")
    text = write_aecg(rec.slice(0, 100), good).read_text()
    (tmp_path / "zero.xml").write_text(text.replace('<increment value="0.002"', '<increment value="0"'))
    with pytest.raises(RecordError, match=r"zero\.xml: sampling rate must be positive"):
        read_record(tmp_path / "zero.xml")
    (tmp_path / "short.xml").write_text(text.replace("</digits>", " 5 6</digits>", 1))
    with pytest.raises(RecordError, match=r"short\.xml: leads differ in length"):
        read_record(tmp_path / "short.xml")
    (tmp_path / "dtd.xml").write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + text.split("?>", 1)[1])
    with pytest.raises(RecordError, match=r"dtd\.xml: .*DTD"):
        read_record(tmp_path / "dtd.xml")


def test_find_records_one_entry_per_record(ecg_root, ludb_dir, tmp_path):
    found = find_records([ecg_root])
    heas = sorted(ecg_root.rglob("*.hea"))
    assert sorted(found) == heas  # label tables (ludb.csv, alarms.csv) and value-per-line CSVs are not records
    rec = read_record(ludb_dir / "data" / "3.hea")
    sub = tmp_path / "exports" / "nested"
    write_edf(rec, sub / "a.edf")
    write_aecg(rec, sub / "b.xml")
    write_csv(rec, tmp_path / "exports" / "c.csv")
    (tmp_path / "exports" / "notes.xml").write_text("<notes/>")
    (tmp_path / "exports" / "labels.csv").write_text("record,label\n1,AF\n")
    names = [p.name for p in find_records([tmp_path / "exports", ludb_dir / "data" / "3.dat"])]
    assert sorted(names) == ["3.hea", "a.edf", "b.xml", "c.csv"]
    for p in find_records([tmp_path / "exports"]):
        assert read_record(p).leads == rec.leads
    with pytest.raises(RecordError, match="nowhere: no such file or folder"):
        find_records([tmp_path / "nowhere"])


def test_resample_polyphase(mitdb_dir):
    fs = 360.0
    t = np.arange(3600) / fs
    sig = np.stack([1000 * np.sin(2 * np.pi * 5 * t), 500 * np.cos(2 * np.pi * 2 * t)], axis=1)
    rec = Record(sig, fs, ("II", "V1"))
    up = resample(rec, 500.0)
    assert up.fs == 500.0 and up.n_samples == 5000
    t2 = np.arange(5000) / 500.0
    inner = slice(100, -100)
    assert np.max(np.abs(up.signals[inner, 0] - 1000 * np.sin(2 * np.pi * 5 * t2)[inner])) < 5.0
    gappy = sig.copy()
    gappy[1000:1360] = np.nan
    down = resample(Record(gappy, fs, ("II", "V1")), 250.0)
    assert down.n_samples == 2500
    gap = np.isnan(down.signals[:, 0])
    assert gap[700:940].all() and not gap[:690].any() and not gap[950:].any()
    real = resample(read_record(mitdb_dir / "101").slice(0, 3600), 250.0)
    assert real.fs == 250.0 and real.n_samples == 2500 and 300 < np.ptp(real.lead("II")) < 10000
    with pytest.raises(RecordError, match="positive"):
        resample(rec, 0.0)


def test_ensure_12_leads(ludb_dir):
    full = read_record(ludb_dir / "data" / "1.hea")
    eight = full.select(("V1", "I", "V2", "V3", "II", "V4", "V5", "V6"))
    twelve = ensure_12_leads(eight)
    assert twelve.leads == full.leads
    i, ii = full.lead("I"), full.lead("II")
    assert np.allclose(twelve.lead("III"), ii - i) and np.allclose(twelve.lead("aVR"), -(i + ii) / 2)
    assert np.allclose(twelve.lead("aVL"), i - ii / 2) and np.allclose(twelve.lead("aVF"), ii - i / 2)
    assert np.array_equal(twelve.lead("V3"), full.lead("V3"))
    for lead in ("III", "aVR", "aVL", "aVF"):  # the cart's own limb leads agree in shape with the derived ones
        assert np.corrcoef(twelve.lead(lead), full.lead(lead))[0, 1] > 0.7, lead
    assert ensure_12_leads(full) is full
    with pytest.raises(RecordError, match="missing V6"):
        ensure_12_leads(full.select(("I", "II", "V1", "V2", "V3", "V4", "V5")))


def test_every_noise_stress_csv_reads_as_headerless_millivolts(noise_stress_dir):
    """The folder's value-per-line exports: 118e* at 360 Hz (MLII), e0* at 250 Hz, in mV, 2 min."""
    from edge_ecg.render import RenderSpec, render

    files = sorted(p for p in noise_stress_dir.glob("*.csv") if not p.name.endswith("_ann.csv"))
    assert len(files) >= 7
    for path in files:
        fs = 360.0 if path.name.startswith("118") else 250.0
        rec = read_csv(path, fs=fs, leads=("II",), unit="mV")
        assert rec.fs == fs and rec.signals.shape == (int(fs * 120), 1) and rec.leads == ("II",)
        assert 300 < np.ptp(rec.signals[: int(2 * fs)]) < 10000, path.name  # QRS: hundreds to thousands of uV
        # offsets of millivolts: the renderer centres each panel so the trace stays in view
        img = render(rec, RenderSpec(layout="strips", leads=("II",)))
        ink_rows = np.nonzero((img.min(axis=2) < 128).any(axis=1))[0]
        assert ink_rows.size and abs(np.median(ink_rows) - 112) < 20, path.name


def test_aecg_cart_style_file(tmp_path):
    """Prefixed namespace, ms increments, origin in mV over a uV scale, mixed-case MDC codes, time zone."""
    path = tmp_path / "cart.xml"
    path.write_text(CART_AECG)
    rec = read_record(path)
    assert rec.fs == pytest.approx(500.0) and rec.leads == ("II", "aVR")
    assert rec.signals[:, 0].tolist() == [100.0, 150.0, 0.0, 300.0]
    assert rec.signals[:, 1].tolist() == [2.5, 5.0, 7.5, 10.0]
    assert rec.start_time == dt.datetime(2024, 5, 1, 8, 30, 0)
    assert find_records([tmp_path]) == [path]


def test_records_and_convert_commands(ludb_dir, tmp_path, capsys):
    from edge_ecg.cli import main

    assert main(["convert", str(ludb_dir / "data" / "4.hea"), str(tmp_path / "4.edf")]) == 0
    assert main(["convert", str(tmp_path / "4.edf"), str(tmp_path / "4.xml")]) == 0
    assert main(["convert", str(tmp_path / "4.xml"), str(tmp_path / "4.csv")]) == 0
    capsys.readouterr()
    assert main(["records", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("10.0 s at 500 Hz, 12 leads") == 3 and "3 record(s), 0 unreadable" in out
    (tmp_path / "5.edf").write_bytes(b"0       garbage")
    assert main(["records", str(tmp_path)]) == 1
    assert "5.edf: ERROR cannot read EDF" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "4.csv"), str(tmp_path / "4.pdf")]) == 2
    assert "4.pdf: cannot write format" in capsys.readouterr().err
