"""The analyzer's interface as the daemon uses it: values, JSON, bad input, gaps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_ecg.dsp import AnalysisUpdate, StreamAnalyzer
from edge_ecg.errors import InputError
from edge_ecg.eval.qrs_eval import stream_record
from edge_ecg.records import read_record
from edge_ecg.stream.block import SampleBlock


@pytest.fixture(scope="module")
def rec(mitdb_dir):
    return read_record(mitdb_dir / "203.hea").slice(0, 40 * 360)


def test_updates_are_json_serialisable_with_events(rec):
    updates = []
    stream_record(rec, 1.0, on_update=updates.append)
    assert all(isinstance(u, AnalysisUpdate) for u in updates)
    text = json.dumps([u.to_dict() for u in updates])
    assert '"beats"' in text
    beats = [b for u in updates for b in u.beats]
    assert len(beats) > 40 and all(isinstance(b.index, int) for b in beats)
    assert updates[-1].heart_rate is not None and 30 < updates[-1].heart_rate < 250
    assert json.dumps(updates[-1].quality[0].to_dict())


def test_bad_blocks_are_named_errors(rec):
    an = StreamAnalyzer(rec.fs, rec.leads)
    with pytest.raises(InputError, match="sampling rate 250"):
        an.process(SampleBlock(0, rec.signals[:10], 250.0, rec.leads))
    with pytest.raises(InputError, match="leads"):
        an.process(SampleBlock(0, rec.signals[:10], rec.fs, ("I", "II")))
    with pytest.raises(InputError, match="sampling rate"):
        StreamAnalyzer(0, ("II",))
    with pytest.raises(InputError, match="at least one lead"):
        StreamAnalyzer(360, ())


def test_a_short_gap_keeps_indices_and_is_flagged(rec):
    an = StreamAnalyzer(rec.fs, rec.leads)
    beats = []
    for a in range(0, 10 * 360, 360):
        beats += an.process(SampleBlock(a, rec.signals[a : a + 360], rec.fs, rec.leads)).beats
    # 2 s never arrive, then the stream resumes at its own index
    resume = 12 * 360
    for a in range(resume, 30 * 360, 360):
        up = an.process(SampleBlock(a, rec.signals[a : a + 360], rec.fs, rec.leads, gap_before=2 * 360 if a == resume else 0))
        beats += up.beats
    wq = an.window_quality(10 * 360, 12 * 360)
    assert all(q.lead_off for q in wq.leads) and not wq.usable
    assert not any(10 * 360 + 100 < b.index < 12 * 360 for b in beats)
    assert any(b.index > 14 * 360 for b in beats)
    assert "asystole" not in an.rhythm.active


def test_a_long_gap_restarts_detection_without_false_asystole(rec):
    an = StreamAnalyzer(rec.fs, rec.leads)
    events, beats = [], []
    for a in range(0, 10 * 360, 360):
        events += an.process(SampleBlock(a, rec.signals[a : a + 360], rec.fs, rec.leads)).events
    resume = 25 * 360  # 15 s lost: beyond what is filled
    for a in range(resume, 40 * 360, 360):
        up = an.process(SampleBlock(a, rec.signals[a : a + 360], rec.fs, rec.leads, gap_before=15 * 360 if a == resume else 0))
        events += up.events
        beats += up.beats
    assert not [e for e in events if e.kind == "asystole"]
    assert len(beats) > 10 and min(b.index for b in beats) >= resume
    assert an.window_quality(30 * 360, 35 * 360).coverage == 1.0
