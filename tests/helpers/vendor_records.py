"""Vendor files written for tests: DICOM waveform ECGs (pydicom) and ISHNE Holter files, with known identifiers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")


PATIENT = {"name": "Jane Doe-Testpatient", "id": "MRN7734512", "birth_date": "1945-02-03"}


def dicom_ecg() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("waveform_ecg.dcm"))


def write_dicom_from(rec, path: Path, patient: dict[str, str] = PATIENT) -> Path:
    """A 12-lead DICOM waveform written by pydicom's own writer: the real file's structure, with
    ``rec``'s samples (int16 at 1.25 uV), rate and length, and the given patient identifiers."""
    ds = pydicom.dcmread(dicom_ecg())
    group = ds.WaveformSequence[0]
    digits = np.round(rec.signals[:, :12].astype(np.float64) / 1.25)
    assert np.abs(digits).max() < 32767
    group.SamplingFrequency = rec.fs
    group.NumberOfWaveformSamples = rec.n_samples
    group.WaveformData = digits.astype("<i2").tobytes()
    ds.WaveformSequence = [group]  # the rhythm only (the file also holds median beats)
    ds.PatientName = patient["name"].replace(" ", "^")
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth_date"].replace("-", "")
    ds.save_as(path, enforce_file_format=True)
    return path


def write_ishne(rec, path: Path, res_nv: int = 1000) -> Path:
    """An ISHNE Holter file written by ``ishneholterlib`` (its writer needs a Holter object; the
    library only builds one from a file, so the header fields are set on a bare instance)."""
    import ishneholterlib as ish

    h = ish.Holter.__new__(ish.Holter)
    h.filename = str(path)
    h.beat_anns, h.is_annfile = [], False
    h.file_version, h.first_name, h.last_name, h.id = 1, "Jane", "Doe-Testpatient", PATIENT["id"]
    h.sex, h.race, h.pm, h.sr = 2, 0, -9, int(rec.fs)
    h.birth_date = dt.date(1945, 2, 3)
    h.record_date, h.start_time = dt.date(2024, 5, 1), dt.time(8, 30, 0)
    h.recorder_type, h.proprietary, h.copyright, h.reserved, h.var_block = b"digital", "", "", "", ""
    spec = {"I": 5, "II": 6, "III": 7, "aVR": 8, "aVL": 9, "aVF": 10, "V1": 11, "V2": 12, "V3": 13, "V4": 14, "V5": 15, "V6": 16}
    h.lead = []
    for j, name in enumerate(rec.leads):
        lead = ish.Lead(spec[name], 1, res_nv)
        lead.data = rec.signals[:, j].astype(np.float64) / 1000.0  # the library takes millivolts
        h.lead.append(lead)
    h.write_file(overwrite=True)
    return path
