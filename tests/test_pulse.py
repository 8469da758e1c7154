"""The pulse as evidence: pulses found on PLETH/ABP at their own rate, and "does it go on?"."""

from __future__ import annotations

import numpy as np

from edge_ecg.dsp.continuity import continuity
from edge_ecg.dsp.pulse import PulseHistory, detect_pulses, pulse_evidence
from edge_ecg.stream.block import AuxChannel
from helpers.records import pulse_wave


def _history(x, fs, name="PLETH"):
    h = PulseHistory(name, fs, seconds=30)
    step = int(fs)
    for a in range(0, x.size, step):  # in 1 s blocks, as a source sends them
        h.append(AuxChannel(name, fs, a, x[a : a + step].astype(np.float32)))
    return h


def test_pulses_are_found_once_each_despite_the_dicrotic_hump():
    fs = 125.0
    beats = np.arange(0.5, 20, 0.8)
    p = detect_pulses(pulse_wave(beats, fs, 20), fs, 0.0)
    assert p.usable
    assert abs(p.times.size - beats.size) <= 1
    assert np.all(np.abs(np.diff(p.times) - 0.8) < 0.05)


def test_a_pulse_that_goes_on_through_a_run_is_continuity_one_and_a_lost_one_zero():
    fs = 125.0
    sinus = np.arange(0.5, 30, 0.8)
    onset = 20.0
    before = sinus[sinus < onset]
    h_on = _history(pulse_wave(sinus, fs, 30), fs)  # artifact on the ECG: the heart goes on
    ev = pulse_evidence(h_on, before, onset, onset + 4.0)
    assert ev.continuity is not None and ev.continuity >= 0.9, ev
    assert abs(ev.rate_before - 75) < 3
    # VT from 20 s: fast, small pulses (0.4 s apart, a third of the size), or none at all
    vt = np.arange(onset, 30, 0.4)
    beats = np.concatenate([before, vt])
    amps = np.concatenate([np.ones(before.size), np.full(vt.size, 0.3)])
    ev = pulse_evidence(_history(pulse_wave(beats, fs, 30, amps), fs), before, onset, onset + 4.0)
    assert ev.continuity is not None and ev.continuity <= 0.25, ev
    ev = pulse_evidence(_history(pulse_wave(before, fs, 30), fs), before, onset, onset + 4.0)
    assert ev.continuity == 0.0, ev


def test_no_evidence_from_a_flat_or_unrelated_wave():
    fs = 125.0
    before = np.arange(0.5, 20, 0.8)
    flat = _history(np.zeros(int(30 * fs)), fs)
    assert pulse_evidence(flat, before, 20.0, 24.0).continuity is None
    # a wave whose "pulses" do not follow the QRS complexes (a different rhythm) is no evidence
    other = _history(pulse_wave(np.arange(0.3, 30, 1.13), fs, 30), fs)
    ev = pulse_evidence(other, before, 20.0, 24.0)
    assert ev.continuity is None and ("transit" in ev.note or "follow" in ev.note), ev


def test_history_keeps_its_own_clock_and_fills_a_gap():
    h = PulseHistory("ABP", 125.0, seconds=10)
    h.append(AuxChannel("ABP", 125.0, 0, np.ones(125, np.float32)))
    h.append(AuxChannel("ABP", 125.0, 250, np.ones(125, np.float32)))  # one second missing
    x, t0 = h.span(0.0, 3.0)
    assert t0 == 0.0 and x.size == 375 and np.isnan(x[125:250]).all()
    for a in range(375, 5000, 125):
        h.append(AuxChannel("ABP", 125.0, a, np.full(125, a, np.float32)))
    x, t0 = h.span(0.0, 40.0)
    assert x.size <= 2 * 1250 and t0 >= 40.0 - 20.0  # bounded memory, the newest samples kept


def test_continuity_counts_on_time_events_and_penalises_early_ones():
    t = np.arange(1, 6) * 0.8
    assert continuity(t, np.ones(5), 0.0, 4.0, 0.8, 1.0) == 1.0
    assert continuity(t, np.full(5, 0.2), 0.0, 4.0, 0.8, 1.0) == 0.0  # too small: stroke volume lost
    fast = np.arange(1, 11) * 0.4
    assert continuity(fast, np.ones(10), 0.0, 4.0, 0.8, 1.0) <= 0.2  # a fast rhythm, not the old one
    assert continuity(t[:1], np.ones(1), 0.0, 1.0, 0.8, 1.0) is None  # one due event: no evidence yet


def test_walk_counts_the_events_due_with_the_share():
    from edge_ecg.dsp.continuity import walk

    t = np.arange(1, 6) * 0.8
    w = walk(t, np.ones(5), 0.0, 4.0, 0.8, 1.0)
    assert (w.good, w.early, w.due) == (5, 0, 5) and w.share() == 1.0
    w = walk(t[:2], np.ones(2), 0.0, 4.0, 0.8, 1.0)  # stopped after two: two missed (the third not late yet)
    assert w.due == 4 and w.share() == 0.5
    assert walk(t, np.ones(5), 0.0, 4.0, 0.0, 1.0) is None  # no rhythm before: nothing to walk


def test_a_late_event_with_no_room_for_a_missed_one_keeps_the_rhythm_when_late_allows():
    from edge_ecg.dsp.continuity import walk

    # a sinus rhythm slowing for one beat (respiratory sinus arrhythmia): the third beat 1.3
    # periods after the second; no missed beat fits in that gap
    t = np.array([0.8, 1.6, 2.64, 3.44, 4.24])
    w = walk(t, np.ones(5), 0.0, 4.3, 0.8, 1.0)  # the default (the pulse's): 0.75-1.25 periods
    assert (w.good, w.due) == (4, 5)
    w = walk(t, np.ones(5), 0.0, 4.3, 0.8, 1.0, late=0.5)  # a lead's normal beats: 0.75-1.5
    assert (w.good, w.due) == (5, 5)
    # a gap of two periods still counts the beat it lacks as missed
    gap = np.array([0.8, 1.6, 3.2, 4.0])
    w = walk(gap, np.ones(4), 0.0, 4.3, 0.8, 1.0, late=0.5)
    assert (w.good, w.due) == (3, 4)
    # and a rhythm that stopped is missed from 1.5 periods after its last beat
    assert walk(t[:2], np.ones(2), 0.0, 2.7, 0.8, 1.0, late=0.5).due == 2
    assert walk(t[:2], np.ones(2), 0.0, 2.85, 0.8, 1.0, late=0.5).due == 3
