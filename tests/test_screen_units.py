"""Screening building blocks: content keys, the results file as resume index, windows, leads, progress."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.records import Record, read_record
from edge_ecg.screen.hashing import content_hash, record_files
from edge_ecg.screen.prepare import NotScreenable, conform_leads, quality_notes, window_starts
from edge_ecg.screen.progress import Progress
from edge_ecg.screen.results import (
    NOT_SCREENED,
    SCREENED,
    BundleId,
    RecordResult,
    ResultsWriter,
    read_results,
    write_results,
)

LABELS = ("LVH", "ischemia")
BID = BundleId("test", "1.0", "ab" * 32)


def _copy_wfdb(src_dir: Path, name: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for suffix in (".hea", ".dat"):
        shutil.copy(src_dir / f"{name}{suffix}", dst / f"{name}{suffix}")
    return dst / f"{name}.hea"


def test_wfdb_record_files_are_header_and_signal_file(ludb_dir, tmp_path):
    hea = _copy_wfdb(ludb_dir / "data", "1", tmp_path / "a")
    assert [p.name for p in record_files(hea)] == ["1.hea", "1.dat"]
    assert [p.name for p in record_files(hea.with_suffix(".dat"))] == ["1.hea", "1.dat"]


def test_content_hash_follows_content_not_path(ludb_dir, tmp_path):
    a = _copy_wfdb(ludb_dir / "data", "1", tmp_path / "a")
    b = _copy_wfdb(ludb_dir / "data", "1", tmp_path / "elsewhere" / "b")
    assert content_hash(a) == content_hash(b)
    c = _copy_wfdb(ludb_dir / "data", "2", tmp_path / "c")
    assert content_hash(c) != content_hash(a)
    # one changed byte in the signal file changes the key, the header alone is not enough
    dat = b.with_suffix(".dat")
    raw = bytearray(dat.read_bytes())
    raw[100] ^= 0xFF
    dat.write_bytes(bytes(raw))
    assert content_hash(b) != content_hash(a)


def _key(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _result(name: str, key: str, probs=None, status=SCREENED, reason="") -> RecordResult:
    r = RecordResult(record=name, source=f"in/{name}.hea", content_hash=key, status=status, bundle=BID,
                     reason=reason, aggregate="max", notes=["resampled from 257 Hz to 500 Hz", "a; b"])
    if probs is not None:
        r.probabilities = dict(zip(LABELS, probs))
        r.flags = {n: p >= 0.5 for n, p in r.probabilities.items()}
        r.windows = 1
    return r


def test_results_csv_round_trip(tmp_path):
    rows = [_result("1", _key("k1"), (0.9, 0.1)), _result("2", _key("k2"), (0.2, 0.3)),
            _result("bad", _key("k3"), status=NOT_SCREENED, reason="record is 3.00 s long")]
    path = tmp_path / "results.csv"
    write_results(path, rows, LABELS)
    back, bad = read_results(path, LABELS)
    assert bad == 0
    assert [r.record for r in back] == ["1", "2", "bad"]
    assert back[0].flagged and not back[1].flagged and not back[2].screened
    assert back[0].probabilities["LVH"] == pytest.approx(0.9)
    assert back[2].reason == "record is 3.00 s long"
    assert back[0].findings == [("LVH", pytest.approx(0.9))]
    header = path.read_text().splitlines()[0].split(",")
    for col in ("record", "source_file", "prob_LVH", "flag_LVH", "quality_notes", "bundle_name", "bundle_version", "bundle_hash"):
        assert col in header


def test_interrupted_results_file_keeps_complete_rows(tmp_path):
    """A run killed mid-write leaves a truncated last row: it is dropped, the rest are reused."""
    path = tmp_path / "results.csv"
    w = ResultsWriter(path, LABELS)
    w.append([_result("1", _key("k1"), (0.9, 0.1)), _result("2", _key("k2"), (0.2, 0.3))])
    w.close()
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # cut into the second row
    back, bad = read_results(path, LABELS)
    assert [r.record for r in back] == ["1"] and bad == 1
    # a file written for other labels is not reused at all
    back, bad = read_results(path, ("other",))
    assert back == [] and bad >= 1


@pytest.mark.parametrize("n,window,hop,expect", [
    (5000, 5000, 2500, [0]),
    (4999, 5000, 2500, []),
    (10000, 5000, 2500, [0, 2500, 5000]),
    (11000, 5000, 5000, [0, 5000, 6000]),  # the tail is always covered
])
def test_window_starts(n, window, hop, expect):
    assert window_starts(n, window, hop) == expect


def _rec(leads, n=5000, fs=500.0):
    rng = np.random.default_rng(0)
    return Record(signals=rng.normal(0, 200, (n, len(leads))).astype(np.float32), fs=fs, leads=tuple(leads), name="x")


def test_limb_leads_derived_from_i_and_ii():
    eight = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    need = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    rec, notes = conform_leads(_rec(eight), need)
    assert rec.leads == need
    np.testing.assert_allclose(rec.lead("III"), rec.lead("II") - rec.lead("I"), atol=1e-3)
    assert any("derived from I and II" in n for n in notes)


def test_missing_chest_leads_are_a_reason():
    need = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    with pytest.raises(NotScreenable, match=r"missing leads the bundle needs: V2, V3, V4, V5, V6; record has 3 lead"):
        conform_leads(_rec(("I", "II", "V1")), need)


def test_quality_notes_name_flat_gappy_and_large_leads():
    rec = _rec(("I", "II", "V1"))
    sig = rec.signals.copy()
    sig[:, 0] = 3.0  # flat
    sig[:500, 1] = np.nan  # 10% gap
    sig[100, 2] = 9000.0  # 9 mV spike
    notes = quality_notes(Record(signals=sig, fs=500.0, leads=rec.leads))
    text = " | ".join(notes)
    assert "flat" in text and "I" in text
    assert "gaps" in text and "II 10%" in text
    assert "over 5 mV" in text and "V1" in text
    assert quality_notes(_rec(("I", "II"))) == []


def test_real_ludb_record_needs_no_conforming(ludb_dir):
    rec = read_record(ludb_dir / "data" / "1.hea")
    need = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    out, notes = conform_leads(rec, need)
    assert out.leads == need and notes == []
    assert not any("flat" in n for n in quality_notes(out))


def test_progress_reports_rate_and_eta():
    buf = io.StringIO()
    p = Progress(10, stream=buf, line_interval_s=0.0)
    for _ in range(10):
        p.update(1)
    p.close()
    lines = buf.getvalue().strip().splitlines()
    assert lines[-1].startswith("screen [") and "10/10 records" in lines[-1]
    assert "rec/s" in lines[-1] and "ETA" in lines[-1]


def test_results_of_another_bundle_are_recognised(tmp_path):
    from edge_ecg.screen.results import foreign_results

    path = tmp_path / "results.csv"
    assert foreign_results(path, LABELS, BID) == ""
    write_results(path, [_result("1", _key("k1"), (0.9, 0.1))], LABELS)
    assert foreign_results(path, LABELS, BID) == ""
    other = BundleId("test", "2.0", "cd" * 32)
    assert "bundle test 1.0 (sha256 abababababab)" in foreign_results(path, LABELS, other)
    assert "other labels (LVH, ischemia)" in foreign_results(path, ("AF",), BID)


def test_monitor_quality_check_names_unusable_windows_and_noisy_leads(ludb_dir):
    """The daemon's own signal-quality check, on a real LUDB record: silent on the clean record,
    a note per unusable window naming the flat leads, and the noisy lead of usable windows once."""
    import dataclasses

    from edge_ecg.screen.prepare import signal_quality_notes

    rec = read_record(ludb_dir / "data" / "1.hea")
    half = rec.n_samples // 2
    assert signal_quality_notes(rec, [0, half], half) == []
    flat = np.zeros_like(rec.signals)  # electrodes off: every lead flat
    notes = signal_quality_notes(dataclasses.replace(rec, signals=flat), [0, half], half)
    assert [n.split(",")[0] for n in notes] == ["signal quality 0.00 at 0 s", "signal quality 0.00 at 5 s"]
    assert all("below the 0.3 the monitor trusts: flat line in I, II, III, aVR" in n for n in notes)
    noisy = rec.signals.copy()
    noisy[:, 0] += np.random.default_rng(0).normal(0.0, 300.0, rec.n_samples)  # lead I only
    assert signal_quality_notes(dataclasses.replace(rec, signals=noisy), [0, half], half) == [
        "monitor quality check: high-frequency noise in I"]
