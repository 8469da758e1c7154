"""WFDB reading of every real record folder: shapes, rates, units and lead names."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.records import Record, RecordError, canonical_lead, read_record


def test_canonical_lead_spellings():
    assert canonical_lead("MLII") == "II"
    assert canonical_lead("ECG II") == "II"
    assert canonical_lead("ii") == "II"
    assert canonical_lead("avr") == "aVR"
    assert canonical_lead("v6") == "V6"
    assert canonical_lead("ECG 1") == "ECG1"


def test_record_refuses_bad_values():
    with pytest.raises(RecordError, match="sampling rate"):
        Record(np.zeros((10, 1)), 0.0, ("II",), source="x.csv")
    with pytest.raises(RecordError, match="collision"):
        Record(np.zeros((10, 2)), 250.0, ("II", "II"), source="x.csv")


def test_missing_wfdb_file_names_it(tmp_path):
    with pytest.raises(RecordError, match="nope.hea"):
        read_record(tmp_path / "nope.hea")


def test_mitdb_every_record(mitdb_dir):
    names = sorted(p.stem for p in mitdb_dir.glob("*.hea"))
    assert len(names) >= 20
    for name in names:
        rec = read_record(mitdb_dir / name)
        assert rec.fs == 360.0 and rec.signals.shape == (650000, 2) and rec.signals.dtype == np.float32
        assert "II" in rec.leads, (name, rec.leads)  # 114 has its leads swapped (V5, MLII)
        # MIT-BIH is in mV at 200 adu/mV: after conversion the QRS spans hundreds of µV
        assert 300 < np.ptp(rec.lead("II")[:3600]) < 10000, name


def test_ludb_every_record(ludb_dir):
    heas = sorted((ludb_dir / "data").glob("*.hea"))
    assert len(heas) >= 150
    for hea in heas:
        rec = read_record(hea)
        assert rec.fs == 500.0 and rec.signals.shape == (5000, 12)
        assert rec.leads == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
        ptp = np.ptp(rec.lead("II"))
        assert 100 < ptp < 10000, (hea.name, ptp)  # QRS in lead II: hundreds to thousands of µV


def test_cinc_every_record_keeps_ecg_only(cinc_vt_dir):
    heas = sorted(cinc_vt_dir.glob("*.hea"))
    assert len(heas) >= 100
    for hea in heas:
        rec = read_record(hea)
        assert rec.fs == 250.0 and rec.signals.shape[1] >= 1
        assert not {"PLETH", "ABP", "RESP"} & set(rec.leads), rec.leads
        assert rec.duration_s >= 299


def test_misc_records(misc_dir):
    ptb = read_record(misc_dir / "s0010_re")
    assert ptb.fs == 1000.0 and ptb.leads[:12] == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    motion = read_record(misc_dir / "test01_00s")
    assert motion.fs == 500.0 and motion.leads == ("ECG1", "ECG2", "ECG3", "ECG4")
    asys = read_record(misc_dir / "a103l")
    assert asys.leads == ("II", "V")
