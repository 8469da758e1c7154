"""Vendor formats through ecgdatakit, on real files where a package ships them and on files written
by the formats' own libraries where none ships; lead names told apart; bad input in plain words.

- DICOM: pydicom ships a real 12-lead ECG (``waveform_ecg.dcm``, a Mortara ELI 250 export); it is
  read through ``read_record`` and compared with pydicom's own ``waveform_array``; a second DICOM
  is written by pydicom's writer (``dcmwrite``) from a LUDB record, with known identifiers.
- ISHNE Holter: written by ``ishneholterlib`` (its ``write_file``) from a LUDB record.
- HL7 aECG: ecgdatakit's reader against ours on every aECG file these tests have.
- SCP-ECG, MFER, Sierra XML, GE MUSE XML, Mortara XML, Kardia JSON: no package here ships a file
  or writes one, so they are not tested (docs/records.md says so).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.errors import RecordError
from edge_ecg.records import anonymize, detect_format, find_records, identifiers, read_record, write_aecg, write_csv, write_edf
from edge_ecg.records.csv_format import rate_from_times
from helpers.vendor_records import PATIENT, dicom_ecg, write_dicom_from, write_ishne

pydicom = pytest.importorskip("pydicom")


def test_real_dicom_ecg_matches_pydicom(tmp_path):
    path = dicom_ecg()
    assert detect_format(path) == "vendor"
    rec = read_record(path)
    ds = pydicom.dcmread(path)
    ref = ds.waveform_array(0)  # pydicom applies the channel sensitivity: microvolts here
    assert rec.fs == 1000.0 and rec.leads == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    assert rec.signals.shape == ref.shape == (10000, 12)
    assert np.max(np.abs(rec.signals - ref)) <= 1.25 / 2  # the file's resolution is 1.25 uV
    assert rec.start_time == dt.datetime(2013, 1, 25, 10, 59, 19)
    assert rec.meta["format_name"] == "DICOM waveform" and rec.meta["device"]["manufacturer"].startswith("Mortara")
    ids = identifiers(rec)
    assert ids["id"] == "642341" and ids["birth_date"] == "1971-01-23"
    # identifiers live only under meta["patient"]; anonymize drops them
    rest = repr({k: v for k, v in rec.meta.items() if k != "patient"})
    assert "642341" not in rest and "1971" not in rest
    assert "642341" not in repr(anonymize(rec).meta)
    # a copy without the .dcm suffix (DICOM folders name files IM000001) is found by content
    (tmp_path / "IM000001").write_bytes(path.read_bytes())
    assert find_records([tmp_path]) == [tmp_path / "IM000001"]


def test_pydicom_written_dicom_round_trip(ludb_dir, tmp_path):
    rec = read_record(ludb_dir / "data" / "7.hea")
    path = write_dicom_from(rec, tmp_path / "ludb7.dcm")
    back = read_record(path)
    assert back.fs == 500.0 and back.leads == rec.leads and back.n_samples == rec.n_samples
    assert np.max(np.abs(back.signals - rec.signals)) <= 1.25 / 2 + 1e-3
    ids = identifiers(back)
    assert ids["id"] == PATIENT["id"] and ids["birth_date"] == PATIENT["birth_date"] and "Doe-Testpatient" in ids["name"]


def test_ishne_written_by_ishneholterlib(ludb_dir, tmp_path):
    pytest.importorskip("ishneholterlib")
    rec = read_record(ludb_dir / "data" / "11.hea")
    path = write_ishne(rec, tmp_path / "holter.ecg")
    assert detect_format(path) == "vendor"
    back = read_record(path)
    assert back.fs == 500.0 and back.leads == rec.leads and back.n_samples == rec.n_samples
    # ishneholterlib truncates to whole counts of 1 uV (1000 nV): within one count
    assert np.max(np.abs(back.signals - rec.signals)) < 1.0 + 1e-3
    assert back.start_time == dt.datetime(2024, 5, 1, 8, 30, 0)
    assert identifiers(back)["id"] == PATIENT["id"]


def _aecg_files(ludb_dir, tmp_path) -> dict[str, Path]:
    """Every aECG file these tests have: LUDB written by us, the cart-style file, and the bad ones."""
    from helpers.records import CART_AECG

    rec = read_record(ludb_dir / "data" / "2.hea")
    files = {"ludb": write_aecg(rec, tmp_path / "ludb2.xml"), "cart": tmp_path / "cart.xml"}
    files["cart"].write_text(CART_AECG)
    text = write_aecg(rec.slice(0, 100), tmp_path / "good.xml").read_text()
    bad = {"dtd": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + text.split("?>", 1)[1],
           "short": text.replace("</digits>", " 5 6</digits>", 1),
           "zero": text.replace('<increment value="0.002"', '<increment value="0"')}
    for k, t in bad.items():
        files[k] = tmp_path / f"{k}.xml"
        files[k].write_text(t)
    return files


def test_aecg_ours_against_ecgdatakit(ludb_dir, tmp_path):
    """Ours is kept: same samples on every file both read, and stricter (a lead longer than the
    others is refused, where ecgdatakit reads the leads at different lengths without a word)."""
    from ecgdatakit import FileParser

    outcome = {}
    for name, path in _aecg_files(ludb_dir, tmp_path).items():
        try:
            ours = read_record(path)
        except RecordError:
            ours = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = FileParser.parse(path, units="uV")
        except Exception:
            theirs = None
        outcome[name] = (ours is not None, theirs is not None)
        if ours is not None and theirs is not None:
            other = np.stack([lead.samples for lead in theirs.leads], axis=1)
            assert [lead.label for lead in theirs.leads] == list(ours.leads)
            assert np.max(np.abs(other - ours.signals)) <= 0.5  # aECG digits: 0.5 uV (ours), 2.5 uV (cart)
    assert outcome == {"ludb": (True, True), "cart": (True, True), "dtd": (False, False), "short": (False, True),
                       "zero": (False, False)}


def test_duplicate_lead_names_load_numbered(tmp_path):
    """Issue #12 item 5: an SVDB-style WFDB record whose two channels are both named ECG."""
    import wfdb

    rng = np.random.default_rng(3)
    sig = np.cumsum(rng.normal(0, 0.01, (1280, 2)), axis=0)
    # wfdb's writer refuses duplicate names (its reader takes them, as SVDB's headers have them):
    # written as ECGA/ECGB, then the header's two signal lines are renamed as SVDB names them
    wfdb.wrsamp("svdb", fs=128, units=["mV", "mV"], sig_name=["ECGA", "ECGB"], p_signal=sig, fmt=["16", "16"],
                write_dir=str(tmp_path))
    hea = tmp_path / "svdb.hea"
    hea.write_text(hea.read_text().replace(" ECGA\n", " ECG\n").replace(" ECGB\n", " ECG\n"))
    assert wfdb.rdheader(str(tmp_path / "svdb")).sig_name == ["ECG", "ECG"]
    rec = read_record(tmp_path / "svdb.hea")
    assert rec.leads == ("ECG1", "ECG2")
    assert rec.meta["renamed_leads"] == {"ECG1": "ECG", "ECG2": "ECG"}
    assert any("named alike" in n for n in rec.meta["read_notes"])
    assert np.allclose(rec.signals / 1000.0, sig, atol=1e-3)
    # the same through EDF and CSV, which keep the names they were given
    for out in (write_edf(rec, tmp_path / "x.edf"), write_csv(rec, tmp_path / "x.csv")):
        assert read_record(out).leads == ("ECG1", "ECG2")
    (tmp_path / "dup.csv").write_text("# fs: 250\nECG,ECG,V,V\n" + "1,2,3,4\n" * 300)
    assert read_record(tmp_path / "dup.csv").leads == ("ECG1", "ECG2", "V-1", "V-2")  # never "V1"
    (tmp_path / "two2.csv").write_text("# fs: 250\nII,MLII\n1,2\n")
    with pytest.raises(RecordError, match="lead name collision: 'II' and 'MLII' both mean II"):
        read_record(tmp_path / "two2.csv")


@pytest.mark.parametrize("fs, ok", [(1e9, False), (62.5, True), (40.0, False), (20000.0, True), (20001.0, False)])
def test_sampling_rate_range(tmp_path, fs, ok):
    path = tmp_path / "r.csv"
    path.write_text(f"# fs: {fs}\nI,II\n" + "1,2\n" * 200)
    if ok:
        assert read_record(path).fs == fs
    else:
        with pytest.raises(RecordError, match=r"sampling rate .* (below|above)"):
            read_record(path)


def test_time_column_rate_rounds_to_plausible_rate(tmp_path):
    n = 3600
    t = np.arange(n) / 360.0
    lines = "\n".join(f"{x:.6f},{i % 50}" for i, x in enumerate(t))
    (tmp_path / "t.csv").write_text("time_s,II\n" + lines + "\n")
    assert read_record(tmp_path / "t.csv").fs == 360.0
    assert np.median(np.diff(np.round(t, 6))) != 1 / 360.0  # one printed step alone gives 359.97 Hz
    assert rate_from_times(np.round(np.arange(1000) / 333.0, 6), Path("x")) == 333.0  # a whole rate off the list


def test_latin1_csv(tmp_path):
    body = "# fs: 500\n# name: Ableitung\ntime_s;I (\u00b5V);II (\u00b5V)\n" + "".join(f"{i / 500:.3f};{i};{-i}\n" for i in range(600))
    (tmp_path / "latin.csv").write_bytes(body.encode("latin-1"))
    rec = read_record(tmp_path / "latin.csv")
    assert rec.leads == ("I", "II") and rec.fs == 500.0 and rec.signals[10, 1] == -10.0
    assert any("Latin-1" in n for n in rec.meta["read_notes"])


def test_csv_read_in_chunks_matches_whole(tmp_path, monkeypatch):
    """The chunked reader gives the same samples as one chunk, including gaps across chunk borders."""
    from edge_ecg.records import csv_format

    rng = np.random.default_rng(0)
    x = rng.normal(0, 300, (5000, 3)).round(3)
    x[1234:1240, 1] = np.nan
    body = "".join(f"{i / 500:.6f}," + ",".join("" if np.isnan(v) else f"{v:.3f}" for v in row) + "\n" for i, row in enumerate(x))
    (tmp_path / "c.csv").write_text("time_s,I,II,V1\n" + body)
    whole = read_record(tmp_path / "c.csv")
    monkeypatch.setattr(csv_format, "CHUNK_LINES", 777)
    chunked = read_record(tmp_path / "c.csv")
    assert np.array_equal(whole.signals, chunked.signals, equal_nan=True) and chunked.fs == 500.0
    assert np.isnan(chunked.signals[1234:1240, 1]).all()
    (tmp_path / "cut.csv").write_text("time_s,I,II,V1\n" + body + "10.0,1\n")
    with pytest.raises(RecordError, match=r"line 5002: 2 cells"):
        read_record(tmp_path / "cut.csv")


def test_edf_header_length_disagreement(ludb_dir, tmp_path, capfd):
    rec = read_record(ludb_dir / "data" / "3.hea")
    edf = write_edf(rec, tmp_path / "a.edf")
    data = bytearray(edf.read_bytes())
    declared = int(data[236:244].decode())

    def variant(name: str, count: int, cut: int = 0) -> Path:
        b = bytearray(data)
        b[236:244] = f"{count:<8d}".encode()
        out = tmp_path / name
        out.write_bytes(bytes(b[: len(b) - cut] if cut else b))
        return out

    longer = read_record(variant("stale.edf", declared - 3))  # recorder never updated its header
    assert longer.n_samples == rec.n_samples
    assert any("holds 10" in n and "announces 7" in n for n in longer.meta["read_notes"])
    unknown = read_record(variant("unknown.edf", -1))  # -1: allowed while recording
    assert unknown.n_samples == rec.n_samples and "unknown number" in unknown.meta["read_notes"][0]
    per_record = (len(data) - 256 * (1 + len(rec.leads))) // declared
    with pytest.raises(RecordError, match=r"holds 8 whole data records but its header announces 10: an incomplete copy"):
        read_record(variant("short.edf", declared, cut=2 * per_record))
    with pytest.raises(RecordError, match=r"truncated: it ends inside data record 10"):
        read_record(variant("cut.edf", declared, cut=100))
    (tmp_path / "junk.edf").write_bytes(b"0       " + bytes(range(256)) * 8)
    with pytest.raises(RecordError) as info:
        read_record(tmp_path / "junk.edf")
    assert "\\x" not in str(info.value) and "b'" not in str(info.value)
    out = capfd.readouterr()
    assert "Updating header" not in out.out + out.err


def test_convert_keeps_or_drops_identifiers(ludb_dir, tmp_path, capsys):
    """``edge-ecg convert`` carries the patient fields its output format has; ``--anonymize`` leaves
    them out of every format (the output bytes are searched for them)."""
    from edge_ecg.cli import main

    rec = read_record(ludb_dir / "data" / "7.hea")
    src = write_dicom_from(rec, tmp_path / "in.dcm")
    needles = [PATIENT["id"], "Doe-Testpatient", "Doe^Testpatient", "19450203", "1945-02-03", "03-FEB-1945"]
    for ext in (".edf", ".xml", ".csv"):
        kept, anon = tmp_path / f"kept{ext}", tmp_path / f"anon{ext}"
        assert main(["convert", str(src), str(kept)]) == 0
        assert main(["convert", "--anonymize", str(src), str(anon)]) == 0
        assert PATIENT["id"].encode() in kept.read_bytes()
        data = anon.read_bytes()
        assert not [n for n in needles if n.encode() in data], ext
        back = read_record(anon)
        assert np.max(np.abs(back.signals - read_record(src).signals)) <= 1.0 and not identifiers(back)
    assert "without patient identifiers" in capsys.readouterr().out
