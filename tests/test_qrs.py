"""Streaming QRS detection on real MIT-BIH records: block-cut invariance, delay bound, robustness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_ecg.dsp import StreamAnalyzer
from edge_ecg.eval.qrs_eval import reference, score, stream_record
from edge_ecg.records import read_record
from edge_ecg.stream.block import SampleBlock


@pytest.fixture(scope="module")
def rec208(mitdb_dir):
    # 208: frequent PVCs, couplets and fusion beats; 45 s keeps the 1-sample run short
    return read_record(mitdb_dir / "208.hea").slice(0, 45 * 360)


def _stream(record, block: int):
    an = StreamAnalyzer(record.fs, record.leads)
    beats, events = [], []
    for a in range(0, record.n_samples, block):
        up = an.process(SampleBlock(start=a, samples=record.signals[a : a + block], fs=record.fs, leads=record.leads))
        beats += up.beats
        events += up.events
    return beats, events


def test_same_beats_for_blocks_of_1_37_and_5000(rec208):
    runs = {n: _stream(rec208, n) for n in (1, 37, 5000)}
    ref_beats = [(b.index, b.decided_at, b.label) for b in runs[5000][0]]
    assert len(ref_beats) > 45
    for n in (1, 37):
        assert [(b.index, b.decided_at, b.label) for b in runs[n][0]] == ref_beats, f"block size {n}"
        assert [(e.kind, e.state, e.index) for e in runs[n][1]] == [(e.kind, e.state, e.index) for e in runs[5000][1]]


def test_decision_delay_is_bounded_and_beats_match_reference(rec208, mitdb_dir):
    beats, _ = stream_record(rec208, 1.0)
    delays = np.array([(b.decided_at - b.index) / rec208.fs for b in beats[5:]])  # after the 2 s learning phase
    assert delays.max() <= 0.30 + 1e-9
    ref, sym, _ = reference(mitdb_dir / "208.hea")
    ref = ref[ref < rec208.n_samples - int(0.3 * 360)]
    s = score(ref, [b.index for b in beats], rec208.fs)
    assert s.se > 0.98 and s.ppv > 0.98
    # ventricular beats are recognised by morphology
    v_ref = set(ref[np.isin(sym[: len(ref)], ["V"])].tolist())
    v_ours = [b.index for b in beats if b.ventricular]
    hits = sum(any(abs(i - r) < 54 for i in v_ours) for r in v_ref)
    assert hits >= 0.8 * len(v_ref)


def test_robust_to_amplitude_change_and_flagged_pacer_spikes(mitdb_dir):
    rec = read_record(mitdb_dir / "119.hea").slice(0, 120 * 360)
    base, _ = stream_record(rec, 1.0)
    sig = rec.signals.copy()
    sig[60 * 360 :] *= 0.25  # electrode/gain change halfway
    quiet, _ = stream_record(dataclasses.replace(rec, signals=sig), 1.0)
    ref, _, _ = reference(mitdb_dir / "119.hea")
    ref = ref[ref < rec.n_samples - 108]
    assert score(ref, [b.index for b in quiet], rec.fs).se > 0.99
    # pacing spikes (4 ms, 5 mV) between beats, flagged by the cart as the protocol does
    spikes = np.array([int((a.index + b.index) / 2) for a, b in zip(base[2:-1], base[3:])])
    sig = rec.signals.copy()
    for p in spikes:
        sig[p : p + 2] += 5000.0
    an = StreamAnalyzer(rec.fs, rec.leads)
    paced = []
    for a in range(0, rec.n_samples, 360):
        rows = spikes[(spikes >= a) & (spikes < a + 360)] - a
        paced += an.process(SampleBlock(a, sig[a : a + 360], rec.fs, rec.leads, pacer=rows)).beats
    s = score(ref, [b.index for b in paced], rec.fs)
    assert s.se > 0.99 and s.ppv > 0.99, s


def test_noise_on_one_lead_beside_a_clean_one_makes_no_beats(mitdb_dir):
    # MIT-BIH 106, 600-700 s: muscle noise on V1 for seconds at a time (654-662 s) while MLII stays
    # clean. Its peaks passed the fused threshold as beats (7 false in this stretch before the
    # cross-lead noise test, 2 with it) and were labelled ventricular.
    rec = read_record(mitdb_dir / "106.hea").slice(600 * 360, 700 * 360)
    ref, _, _ = reference(mitdb_dir / "106.hea")
    ref = ref[(ref >= 603 * 360) & (ref < 699 * 360)] - 600 * 360
    runs = {n: _stream(rec, n) for n in (37, 360, 5000)}
    beats = runs[360][0]
    idx = np.array([b.index for b in beats])
    inside = idx[(idx >= 3 * 360) & (idx < 99 * 360)]
    false = [i for i in inside if np.abs(ref - i).min() > 54]
    missed = [r for r in ref if np.abs(idx - r).min() > 54]
    assert missed == [] and len(false) <= 3, (missed, false)
    for n in (37, 5000):  # the noise test changes state only at whole seconds and beats
        assert [(b.index, b.label) for b in runs[n][0]] == [(b.index, b.label) for b in beats], f"block size {n}"


def test_a_ventricular_run_that_raises_one_leads_floor_is_still_detected(cinc_vt_dir):
    # CinC 2015 v471l (a true VT alarm): the run's complexes fill lead V (its envelope floor rises
    # from under 0.5% to 17-19% of its QRS level, as noise would) and show at 12-20% in lead II.
    # Down-weighting V, or learning noise levels from rejected candidates, lost the run.
    rec = read_record(cinc_vt_dir / "v471l.hea")
    beats, events = stream_record(rec, 1.0)
    run = [b for b in beats if 297.8 * rec.fs <= b.index <= 299.9 * rec.fs]
    assert len(run) >= 7, [(round(b.index / rec.fs, 2), b.label) for b in run]
    onsets = [e.index / rec.fs for e in events if e.kind == "ventricular_tachycardia" and e.state == "onset"]
    assert any(abs(t - 298.5) < 2 for t in onsets), onsets


def test_a_motion_step_on_one_lead_beside_a_clean_one_makes_no_beat(mitdb_dir):
    # MIT-BIH 108, 200-460 s: single steps of electrode motion on V1 while MLII stays clean. Too
    # brief to raise a whole second's floor, so no lead counts as noisy; 7 were beats (labelled
    # ventricular) before the silent-lead test, 2 with it (both inside a noisy second).
    rec = read_record(mitdb_dir / "108.hea").slice(200 * 360, 460 * 360)
    ref, _, _ = reference(mitdb_dir / "108.hea")
    ref = ref[(ref >= 203 * 360) & (ref < 459 * 360)] - 200 * 360
    runs = {n: _stream(rec, n) for n in (37, 360, 5000)}
    idx = np.array([b.index for b in runs[360][0]])
    inside = idx[(idx >= 3 * 360) & (idx < 259 * 360)]
    false = [round(i / 360, 2) for i in inside if np.abs(ref - i).min() > 54]
    missed = [round(r / 360, 2) for r in ref if np.abs(idx - r).min() > 54]
    assert missed == [] and len(false) <= 2, (missed, false)
    for n in (37, 5000):
        assert [b.index for b in runs[n][0]] == list(idx), f"block size {n}"


def test_a_lead_that_goes_flat_is_no_evidence_against_the_beats_of_the_other(mitdb_dir):
    # MIT-BIH 118 with MLII held at one value from 50 s on (an electrode pulled, not yet flagged
    # lead-off): its silence beside V1's QRS is not a silent lead that saw no beat. Taken as one,
    # the three beats after the flat start were dropped.
    rec = read_record(mitdb_dir / "118.hea").slice(0, 100 * 360)
    sig = rec.signals.copy()
    sig[50 * 360 :, 0] = sig[50 * 360, 0]
    rec = dataclasses.replace(rec, signals=sig)
    ref, _, _ = reference(mitdb_dir / "118.hea")
    ref = ref[(ref >= 3 * 360) & (ref < 99 * 360)]
    idx = np.array([b.index for b in _stream(rec, 360)[0]])
    missed = [round(r / 360, 2) for r in ref if np.abs(idx - r).min() > 54]
    assert missed == [], missed


@pytest.mark.parametrize("name", ["A04012", "A03524", "A08327"])
def test_a_start_up_transient_does_not_blind_the_detector(ecg_root, name):
    # CinC 2017 handheld strips of normal sinus rhythm that begin with the finger settling on the
    # electrode (2-4 mV against QRS complexes of 0.5-1 mV): learned as the QRS level, with at most
    # one beat after it no interval was known and the threshold never decayed; the strip made one
    # beat in 30 s and raised asystole at 4 s
    cinc = ecg_root / "cinc2017"
    if not cinc.is_dir():
        pytest.skip("cinc2017 not present")
    ref = dict(line.split(",")[:2] for line in (cinc / "REFERENCE.csv").read_text().split())
    assert ref[name] == "N"
    rec = read_record(cinc / f"{name}.hea")
    beats, events = stream_record(rec, 1.0)
    assert not [e for e in events if e.kind == "asystole"]
    t = np.array([b.index for b in beats]) / rec.fs
    assert t[-1] > rec.n_samples / rec.fs - 2.0
    assert np.diff(t[t > 6.0]).max() < 1.5  # after a few seconds, no beat of the sinus rhythm is missed



def test_reference_annotations_that_cannot_be_read_are_named_for_a_str_path_too(tmp_path):
    from edge_ecg.errors import InputError

    with pytest.raises(InputError, match=r"x\.atr: cannot read reference annotations"):
        reference(str(tmp_path / "x.hea"))
