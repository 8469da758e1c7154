"""Classical rhythm alarms: the CinC 2015 definitions, onsets/offsets with evidence, configurable limits."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.dsp import AnalyzerConfig, RhythmLimits, StreamAnalyzer
from edge_ecg.dsp.rhythm import RhythmDetector, vf_features
from edge_ecg.dsp.types import Beat
from edge_ecg.errors import ConfigError
from edge_ecg.eval.qrs_eval import stream_record
from edge_ecg.records import read_record

FS = 250.0


def _feed(det: RhythmDetector, rates_bpm, ventricular=False, start=0):
    """Beats at the given instantaneous rates; returns all events."""
    events, idx, prev = [], start, None
    for hr in rates_bpm:
        idx += int(round(60.0 / hr * FS))
        rr = None if prev is None else (idx - prev) / FS
        events += det.on_beat(Beat(index=idx, decided_at=idx + 50, ventricular=ventricular, label="V" if ventricular else "N", rr_s=rr), 1.0)
        prev = idx
    return events


def test_extreme_bradycardia_needs_five_consecutive_slow_beats():
    det = RhythmDetector(FS)
    assert not _feed(det, [70] * 10 + [35] * 4)  # 4 slow intervals: not yet
    ev = [e for e in _feed(RhythmDetector(FS), [70] * 10 + [35] * 6 + [70]) if e.kind == "extreme_bradycardia"]
    assert [e.state for e in ev] == ["onset", "offset"]
    assert len(ev[0].evidence["rates_bpm"]) == 5 and max(ev[0].evidence["rates_bpm"]) < 40


def test_extreme_tachycardia_needs_seventeen_beats():
    det = RhythmDetector(FS)
    assert not [e for e in _feed(det, [80] * 5 + [150] * 16) if e.kind == "extreme_tachycardia"]
    det = RhythmDetector(FS)
    on = [e for e in _feed(det, [80] * 5 + [150] * 18) if e.kind == "extreme_tachycardia"]
    assert [e.state for e in on] == ["onset"]


def test_ventricular_tachycardia_five_ventricular_beats_over_100():
    det = RhythmDetector(FS)
    _feed(det, [75] * 8)
    ev = _feed(det, [130] * 6, ventricular=True, start=8 * 200)
    on = [e for e in ev if e.kind == "ventricular_tachycardia"]
    assert len(on) == 1 and on[0].state == "onset" and on[0].evidence["rate_bpm"] > 100
    assert len(on[0].evidence["beats"]) == 5
    off = _feed(det, [75], start=10**6)
    assert [e.state for e in off if e.kind == "ventricular_tachycardia"] == ["offset"]
    # slow ventricular rhythm (idioventricular, 70 bpm) is not VT; four fast ones are not either
    det = RhythmDetector(FS)
    assert not _feed(det, [70] * 8, ventricular=True)
    det = RhythmDetector(FS)
    assert not _feed(det, [130] * 4, ventricular=True)


def test_limits_are_configurable_and_validated():
    det = RhythmDetector(FS, RhythmLimits(vt_beats=3, vt_bpm=90))
    assert [e.kind for e in _feed(det, [100] * 4, ventricular=True)] == ["ventricular_tachycardia"]
    cfg = AnalyzerConfig.from_dict({"rhythm": {"vt_beats": 3}, "filters": {"mains_hz": 50}})
    assert cfg.rhythm.vt_beats == 3 and cfg.filters.mains_hz == 50
    with pytest.raises(ConfigError, match="vt_beatz"):
        AnalyzerConfig.from_dict({"rhythm": {"vt_beatz": 3}})
    with pytest.raises(ConfigError, match="mains_hz"):
        AnalyzerConfig.from_dict({"filters": {"mains_hz": 55}})


def test_asystole_on_a_real_record_with_a_pause(mitdb_dir):
    rec = read_record(mitdb_dir / "119.hea").slice(0, 60 * 360)
    sig = rec.signals.copy()
    sig[20 * 360 : 27 * 360] = sig[20 * 360]  # 7 s of no electrical activity (leads still on)
    import dataclasses

    beats, events = stream_record(dataclasses.replace(rec, signals=sig), 1.0)
    asy = [e for e in events if e.kind == "asystole"]
    assert [e.state for e in asy] == ["onset", "offset"]
    onset, offset = asy
    assert 23 * 360 < onset.index < 25 * 360  # 4 s after the last beat before the pause
    assert 27 * 360 <= offset.index < 28.5 * 360
    assert onset.evidence["pause_s"] >= 4.0
    # no other alarm on this sinus rhythm
    assert not [e for e in events if e.kind != "asystole"]


def test_lead_off_withholds_asystole(mitdb_dir):
    from edge_ecg.stream.block import SampleBlock

    rec = read_record(mitdb_dir / "119.hea").slice(0, 40 * 360)
    sig = rec.signals.copy()
    sig[20 * 360 :] = 0.0
    off = np.zeros(sig.shape, dtype=bool)
    off[20 * 360 :] = True
    an = StreamAnalyzer(rec.fs, rec.leads)
    events = []
    for a in range(0, len(sig), 360):
        events += an.process(SampleBlock(a, sig[a : a + 360], rec.fs, rec.leads, lead_off=off[a : a + 360])).events
    assert not [e for e in events if e.kind == "asystole"]
    assert all(q.lead_off for q in an.lead_quality)


def test_vf_features_tell_an_oscillation_from_sinus_beats(mitdb_dir):
    fs = 250.0
    t = np.arange(int(2 * fs)) / fs
    flutter = 800 * np.sin(2 * np.pi * 4.5 * t)
    fdom, conc, leak = vf_features(flutter[:, None], fs)
    assert 4.0 <= fdom[0] <= 5.0 and conc[0] > 0.8 and leak[0] < 0.3
    rec = read_record(mitdb_dir / "119.hea").slice(0, 4 * 360)
    from edge_ecg.dsp.filters import MonitorFilter

    x = MonitorFilter(360, 2)(rec.signals.astype(float))[360 : 3 * 360]
    fdom, conc, leak = vf_features(x, 360)
    assert (leak > 0.7).all() or (conc < 0.45).all()
