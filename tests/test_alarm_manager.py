"""The IEC 60601-1-8 alarm manager driven by stream time: latching, ack, audio pause, breakthrough, triage."""

from __future__ import annotations

import pytest

from edge_ecg.alarms import AlarmManager, Priority, TriageLimits, model_condition


def kinds(events):
    return [(e.kind, e.alarm) for e in events]


def test_high_priority_physiological_alarm_latches_until_acknowledged():
    m = AlarmManager()
    ev = m.set_condition("asystole", True, 10.0, {"rr": None})
    assert kinds(ev) == [("raised", "asystole")]
    assert ev[0].priority == "high" and ev[0].category == "physiological"
    assert m.audio() == "sounding-high"
    ev = m.set_condition("asystole", False, 14.0)
    assert kinds(ev) == [("latched", "asystole")]
    assert m.audio() == "sounding-high", "a latched alarm keeps sounding after the condition ends"
    ev = m.acknowledge(20.0)
    assert kinds(ev) == [("reset", "asystole")]
    assert m.audio() == "off" and m.status()["alarms"] == []


def test_technical_alarm_does_not_latch_and_ack_silences_until_condition_ends():
    m = AlarmManager()
    m.set_condition("leads_off", True, 1.0)
    assert m.audio() == "sounding-medium"
    assert kinds(m.acknowledge(2.0)) == [("acknowledged", "leads_off")]
    assert m.audio() == "off"
    assert m.state("leads_off").active
    assert kinds(m.set_condition("leads_off", False, 3.0)) == [("cleared", "leads_off")]
    # the next time it happens it sounds again
    m.set_condition("leads_off", True, 9.0)
    assert m.audio() == "sounding-medium"


def test_acknowledged_active_high_alarm_clears_without_latching():
    m = AlarmManager()
    m.set_condition("ventricular_tachycardia", True, 5.0)
    m.acknowledge(6.0, "ventricular_tachycardia")
    assert kinds(m.set_condition("ventricular_tachycardia", False, 9.0)) == [("cleared", "ventricular_tachycardia")]


def test_audio_pause_is_bounded_then_sounds_again():
    m = AlarmManager(audio_pause_s=120.0)
    m.set_condition("leads_off", True, 0.0)
    ev = m.pause_audio(10.0, seconds=600)  # asking for more than the limit gets the limit
    assert ev[-1].kind == "audio_paused" and ev[-1].evidence["until"] == pytest.approx(130.0)
    assert m.audio() == "paused"
    assert m.advance(129.9) == []
    ev = m.advance(130.5)
    assert [e.kind for e in ev] == ["audio_resumed"]
    assert m.audio() == "sounding-medium"


def test_new_high_priority_alarm_breaks_through_pause_and_acknowledged_state():
    m = AlarmManager()
    m.set_condition("noise", True, 0.0)
    m.pause_audio(1.0)
    assert m.audio() == "paused"
    ev = m.set_condition("ventricular_fibrillation", True, 5.0)
    assert kinds(ev) == [("raised", "ventricular_fibrillation"), ("breakthrough", "ventricular_fibrillation")]
    assert m.audio() == "sounding-high"
    # acknowledged state: ack everything, then a new high alarm sounds
    m.acknowledge(6.0)
    assert m.audio() == "off"
    ev = m.set_condition("asystole", True, 8.0)
    assert ("breakthrough", "asystole") in kinds(ev)
    assert m.audio() == "sounding-high"


def test_medium_alarm_does_not_break_through_pause():
    m = AlarmManager()
    m.set_condition("asystole", True, 0.0)
    m.pause_audio(1.0)
    ev = m.set_condition("signal_lost", True, 2.0)
    assert kinds(ev) == [("raised", "signal_lost")]
    assert m.audio() == "paused"


def test_latched_alarm_reonset_sounds_again():
    m = AlarmManager()
    m.set_condition("extreme_bradycardia", True, 0.0)
    m.set_condition("extreme_bradycardia", False, 3.0)
    ev = m.set_condition("extreme_bradycardia", True, 4.0)
    assert kinds(ev) == [("raised", "extreme_bradycardia")]
    assert m.state("extreme_bradycardia").active and not m.state("extreme_bradycardia").latched


def test_triage_lowers_priority_only_within_limits_and_logs_decision():
    m = AlarmManager(triage=TriageLimits(conditions=("ventricular_tachycardia",), max_steps=2, floor=Priority.MEDIUM))
    m.set_condition("ventricular_tachycardia", True, 100.0)
    ev = m.triage("ventricular_tachycardia", 101.0, True, {"p_true": 0.03, "bundle": "vt-triage"})
    assert ev[-1].kind == "triage"
    assert ev[-1].evidence["decision"] == "lowered high -> medium"  # floor medium despite max_steps 2
    assert ev[-1].evidence["p_true"] == 0.03
    assert m.state("ventricular_tachycardia").priority is Priority.MEDIUM
    assert m.state("ventricular_tachycardia").active, "triage never clears an alarm"
    assert m.audio() == "sounding-medium"
    # a second false verdict is at the floor: annotated, not lowered further
    ev = m.triage("ventricular_tachycardia", 102.0, True, {"p_true": 0.01})
    assert ev[-1].evidence["decision"].startswith("annotated (already at floor")


def test_triage_not_allowed_for_other_conditions_or_when_annotate_only():
    m = AlarmManager(triage=TriageLimits(conditions=("ventricular_tachycardia",)))
    m.set_condition("asystole", True, 0.0)
    ev = m.triage("asystole", 1.0, True, {"p_true": 0.0})
    assert "not allowed" in ev[-1].evidence["decision"]
    assert m.state("asystole").priority is Priority.HIGH
    m2 = AlarmManager(triage=TriageLimits(annotate_only=True))
    m2.set_condition("ventricular_tachycardia", True, 0.0)
    ev = m2.triage("ventricular_tachycardia", 1.0, True, {"p_true": 0.0})
    assert "annotate_only" in ev[-1].evidence["decision"]
    assert m2.state("ventricular_tachycardia").priority is Priority.HIGH


def test_triage_confirmation_keeps_priority():
    m = AlarmManager()
    m.set_condition("ventricular_tachycardia", True, 0.0)
    ev = m.triage("ventricular_tachycardia", 1.0, False, {"p_true": 0.97})
    assert ev[-1].evidence["decision"] == "confirmed"
    assert m.state("ventricular_tachycardia").priority is Priority.HIGH


def test_model_condition_and_priority_override_and_events_callback():
    seen = []
    m = AlarmManager(priorities={"noise": Priority.MEDIUM}, on_event=seen.append)
    m.register(model_condition("afib", "medium", "rhythm"))
    m.set_condition("model:afib", True, 3.0, {"p": 0.9})
    m.set_condition("noise", True, 3.0)
    assert [e.priority for e in seen] == ["medium", "medium"]
    with pytest.raises(KeyError, match="unknown alarm condition"):
        m.set_condition("nonsense", True, 1.0)


def test_withheld_is_logged_but_raises_nothing():
    m = AlarmManager()
    ev = m.withheld("asystole", 5.0, "lead off on every analysed lead")
    assert ev[0].kind == "withheld" and m.audio() == "off" and m.active() == []
