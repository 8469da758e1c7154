"""The condition policy (``service/policy.py``) without threads, ptys or runtimes: values in, the alarm
manager's events out, on stream time. Rhythm conditions are handled from the catalogue generically
(a new one there is reconciled like the others); restored alarms are confirmed or ended; storage
and unavailable models become technical conditions."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.alarms import AlarmManager
from edge_ecg.alarms.conditions import (
    LEADS_OFF,
    MODEL_UNAVAILABLE,
    NOISE,
    OVERRUN,
    RHYTHM_CONDITIONS,
    SIGNAL_LOST,
    STORAGE_FAILED,
    Category,
    ConditionSpec,
    Priority,
)
from edge_ecg.dsp.types import AnalysisUpdate, LeadQuality, RhythmEvent, WindowQuality
from edge_ecg.service.models import UnavailableModel
from edge_ecg.service.policy import ConditionPolicy
from edge_ecg.stream.block import SampleBlock, SourceState

FS = 250.0
LEADS = ("II", "V1")


def block(start: int, n: int = 250, off: tuple[bool, bool] | None = None, gap: int = 0, reason: str = "") -> SampleBlock:
    lead_off = None if off is None else np.tile(np.array(off), (n, 1))
    return SampleBlock(start=start, samples=np.zeros((n, 2), np.float32), fs=FS, leads=LEADS, lead_off=lead_off, gap_before=gap, gap_reason=reason)


def make(quality=None, **kw):
    events = []
    m = AlarmManager(on_event=events.append)
    p = ConditionPolicy(m, **kw)
    p.start_stream(FS, LEADS, 0.0, quality)
    return m, p, events


def kinds(events, name):
    return [e.kind for e in events if e.alarm == name]


def test_every_rhythm_of_the_catalogue_raises_latches_and_is_withheld_with_electrodes_off():
    for spec in RHYTHM_CONDITIONS:
        m, p, events = make()
        name = spec.name
        onset = AnalysisUpdate(0, 250, events=(RhythmEvent(name, "onset", 100, {"run": 5}),), active=frozenset({name}))
        p.block(block(0), onset, 1.0)
        raised = [e for e in events if e.alarm == name and e.kind == "raised"]
        assert raised and raised[0].evidence["onset_t"] == 0.4 and raised[0].evidence["latency_s"] == 0.6
        p.block(block(250), AnalysisUpdate(250, 500), 2.0)  # no longer active: a high-priority alarm latches
        assert kinds(events, name)[-1] == ("latched" if spec.latches else "cleared")
        # every analysed lead off: withheld (said once), not raised
        m2, p2, ev2 = make()
        for k in range(3):
            p2.block(block(250 * k, off=(True, True)), AnalysisUpdate(250 * k, 250 * (k + 1), active=frozenset({name})), 1.0 + k)
        assert kinds(ev2, name) == ["withheld"]


def test_a_rhythm_added_to_the_catalogue_is_handled_like_the_others(monkeypatch):
    """The issue's hand-off: an atrial_fibrillation condition (medium) joins RHYTHM_CONDITIONS."""
    import edge_ecg.alarms.conditions as conditions
    import edge_ecg.service.policy as policy

    af = ConditionSpec("atrial_fibrillation", Category.PHYSIOLOGICAL, Priority.MEDIUM, "irregularly irregular, no P waves")
    monkeypatch.setattr(policy, "RHYTHM_NAMES", policy.RHYTHM_NAMES + (af.name,))
    monkeypatch.setitem(conditions.CATALOG, af.name, af)
    m, p, events = make()
    p.block(block(0), AnalysisUpdate(0, 250, active=frozenset({af.name})), 1.0)
    p.block(block(250), AnalysisUpdate(250, 500), 2.0)
    assert kinds(events, af.name) == ["raised", "cleared"]  # medium: does not latch


def test_leads_off_and_signal_lost_follow_the_blocks_and_the_link():
    m, p, events = make()
    p.block(block(0, off=(False, True)), None, 1.0)
    assert events[-1].alarm == LEADS_OFF.name and events[-1].evidence["leads"] == ["V1"]
    p.block(block(250), None, 2.0)
    assert kinds(events, LEADS_OFF.name) == ["raised", "cleared"]
    p.idle(2.0, quiet_s=0.3, source_state=SourceState.LOST, stream_ended=False, speed=1.0)
    assert kinds(events, SIGNAL_LOST.name) == ["raised"]
    p.block(block(1000, gap=500, reason="missing"), None, 4.0)
    assert kinds(events, SIGNAL_LOST.name) == ["raised", "cleared"]
    assert events[-1].alarm == SIGNAL_LOST.name and events[-1].evidence == {"gap_samples": 500, "gap_reason": "missing"}
    p.idle(4.0, quiet_s=5.0, source_state=None, stream_ended=True, speed=1.0)  # a replay that ended is not a lost signal
    assert kinds(events, SIGNAL_LOST.name) == ["raised", "cleared"]


def test_noise_every_2_s_over_the_last_4_s():
    calls = []

    def quality(start, stop):
        calls.append((start, stop))
        noisy = stop > 1000
        leads = tuple(LeadQuality(l, 0.2 if noisy else 0.9, noisy=noisy) for l in LEADS)
        return WindowQuality(start, stop, 0.2 if noisy else 0.9, not noisy, leads)

    m, p, events = make(quality)
    for k in range(12):
        p.block(block(250 * k), AnalysisUpdate(250 * k, 250 * (k + 1)), (k + 1))
    assert calls[0] == (0, 250) and all(b - a == 1000 for a, b in calls[2:])
    assert len(calls) == 6  # every 2 s of stream
    assert kinds(events, NOISE.name) == ["raised"]


def test_overrun_inference_failure_and_model_unavailable():
    m, p, events = make()
    p.window_posted("rhythm", 10.0, replaced_stop_t=8.0)
    assert kinds(events, OVERRUN.name) == ["raised"]
    for k in range(3):
        p.window_posted("rhythm", 12.0 + 2 * k, None)
    assert kinds(events, OVERRUN.name) == ["raised", "cleared"]
    p.inference("rhythm", 20.0, RuntimeError("CUDA error"))
    p.inference("rhythm", 22.0, None)
    assert kinds(events, "inference_failure") == ["raised", "cleared"]
    bad = UnavailableModel("/opt/edge-ecg/bundles/rhythm", "findings", "model.int8.onnx: sha256 mismatch")
    p.models_unavailable([bad], 0.0)
    p.models_unavailable([bad], 1.0)  # unchanged: no new event
    mu = [e for e in events if e.alarm == MODEL_UNAVAILABLE.name]
    assert [e.kind for e in mu] == ["raised"] and mu[0].category == "technical"
    assert mu[0].evidence["bundles"][0]["bundle"] == "rhythm" and "sha256" in mu[0].evidence["reason"]


def test_storage_failure_raises_and_clears():
    m, p, events = make()
    p.storage({"reason": "event_log events.jsonl: ENOSPC: No space left on device"}, 1.0)
    p.storage({"reason": "still"}, 2.0)
    p.storage(None, 3.0)
    sf = [e for e in events if e.alarm == STORAGE_FAILED.name]
    assert [e.kind for e in sf] == ["raised", "cleared"] and sf[0].priority == "medium" and "ENOSPC" in sf[0].evidence["reason"]


def test_restored_alarms_are_confirmed_or_ended_after_the_restart():
    before = AlarmManager()
    before.set_condition("ventricular_tachycardia", True, 100.0)
    before.set_condition("overrun", True, 101.0)
    before.set_condition("asystole", True, 102.0)
    before.set_condition("asystole", False, 103.0)  # latched, unacknowledged
    snap = before.snapshot()
    events = []
    m = AlarmManager(on_event=events.append)
    m.restore(snap, down_s=3.0)
    restarted = events[-1]
    assert restarted.kind == "restarted" and {r["alarm"] for r in restarted.evidence["restored"]} == {"ventricular_tachycardia", "overrun", "asystole"}
    p = ConditionPolicy(m)
    p.start_stream(FS, LEADS, 50.0, None)  # a replay starts its stream time again
    # VT is still there: seen again -> no longer "restored"; overrun is never seen again
    p.block(block(12500), AnalysisUpdate(12500, 12750, active=frozenset({"ventricular_tachycardia"})), 51.0)
    assert m.state("ventricular_tachycardia").restored is False and m.state("ventricular_tachycardia").active
    assert m.state("overrun").restored and m.state("overrun").active
    p.block(block(15000), AnalysisUpdate(15000, 15250, active=frozenset({"ventricular_tachycardia"})), 61.0)
    assert m.state("overrun") is None, "not seen within 10 s of the restart: ended"
    latched = m.state("asystole")
    assert latched.latched and latched.restored and not latched.acknowledged  # still needs an acknowledgement
    assert m.audio() == "sounding-high"


def test_restored_audio_pause_counts_from_the_stream_start_less_the_downtime():
    before = AlarmManager(audio_pause_s=120)
    before.set_condition("leads_off", True, 10.0)
    before.pause_audio(t=10.0, seconds=60)
    snap = before.snapshot()
    m = AlarmManager(audio_pause_s=120)
    m.restore(snap, down_s=20.0)
    assert m.audio() == "paused"
    m.start_stream(500.0)
    assert m.status()["paused_until"] == pytest.approx(540.0)
    m.advance(541.0)
    assert m.audio() == "sounding-medium"
