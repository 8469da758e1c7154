"""Whole-folder evaluations on the real data, one streaming pass per folder shared by the assertions.

* MIT-BIH DS1: every record replayed once through the daemon's analyzer (1 s blocks): its beats
  score the QRS detector, its alarms the false alarms per hour; xqrs runs on two records only.
* CinC 2015 VT alarms: every record streamed once with the evidence checks logging
  (``alarm_cv``): the out-of-fold figures come from that log, and a streamed subset with the
  shipped limits must decide exactly as the replay of the log does.
These are the figures docs/dsp-alarms.md reports; the bounds below are what the detectors reach
(regression guards), not the issue's targets where those are not met (the docs say which).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from edge_ecg.dsp.config import EvidenceLimits
from edge_ecg.eval.alarm_cv import ROW_ECG, ROW_PREV, ROW_PULSE, Counts, collect, cross_validated, decider, replay
from edge_ecg.eval.alarm_eval import evaluate_alarms
from edge_ecg.eval.qrs_eval import Score, evaluate_noise_stress, reference, score, ventricular_score, xqrs_detect
from edge_ecg.eval import stream_eval
from edge_ecg.eval.stream_eval import StreamReport, folder_records, replay_record, score_alarms

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def ds1(mitdb_dir):
    """Per DS1 record: the record, its QRS reference, our beats, the stream scores, the alarms."""
    out = {}
    recs = folder_records(mitdb_dir)
    with ProcessPoolExecutor(2) as pool:  # records are independent: both cores
        replays = list(pool.map(replay_record, [rec for rec, _ in recs]))  # the daemon's analyzer, shipped [dsp]
    for (rec, ref), (beats, alarms) in zip(recs, replays):
        out[rec.name] = (rec, reference(mitdb_dir / f"{rec.name}.hea"), beats, score_alarms(alarms, ref, rec.fs))
    assert len(out) == 22
    return out


def test_ds1_qrs_gross_sensitivity_and_predictivity(ds1):
    ours, raw = Score(), Score()
    delay = 0.0
    for rec, (ref, _, spans), beats, _ in ds1.values():
        idx = [b.index for b in beats]
        ours += score(ref, idx, rec.fs, spans, rec.n_samples)
        raw += score(ref, idx, rec.fs, n_samples=rec.n_samples)
        delay = max(delay, max((b.decided_at - b.index) / rec.fs for b in beats))
    # +P 0.99738 before the silent-lead test (108's motion steps), 0.99798 with it
    assert ours.se >= 0.998 and ours.ppv >= 0.9977, (ours.se, ours.ppv)
    assert raw.ppv >= 0.99
    assert delay <= 0.30


def test_ds1_ventricular_beat_labels(ds1):
    # EC57 VEB Se / +P of the morphology labels; before beats were aligned to the template, +P was
    # about 0.25 (a biphasic QRS's R peak jumping to the S wave made normal beats "ventricular")
    v = Score()
    for rec, (ref, sym, spans), beats, _ in ds1.values():
        v += ventricular_score(ref, sym, beats, rec.fs, spans, rec.n_samples)
    assert v.tp + v.fn > 3000
    assert v.se >= 0.85 and v.ppv >= 0.6, (v.se, v.ppv)


def test_better_than_xqrs_on_the_two_hardest_records(ds1):
    # 108 (tall T waves, noise) and 203 (multiform PVCs, noise); xqrs costs seconds per record
    ours, xq = Score(), Score()
    for name in ("108", "203"):
        rec, (ref, _, spans), beats, _ = ds1[name]
        ours += score(ref, [b.index for b in beats], rec.fs, spans, rec.n_samples)
        xq += score(ref, xqrs_detect(rec), rec.fs, spans, rec.n_samples)
    assert ours.se > xq.se and ours.ppv > xq.ppv, (ours, xq)


def test_ds1_alarms_per_monitored_hour(ds1, mitdb_dir):
    per = {name: sc for name, (_, _, _, sc) in ds1.items()}
    hours = sum(rec.duration_s for rec, *_ in ds1.values()) / 3600
    report = StreamReport(str(mitdb_dir), hours, per, [], [])
    c = report.conditions()
    vt = c["ventricular_tachycardia"]
    # the CinC definition finds DS1's 9 runs of >= 5 ventricular beats (MIT-BIH's "(VT" on 3-4
    # beats are short runs), and every one is alarmed within 10 s
    assert vt["episodes"] >= 9 and vt["missed"] == 0, vt
    # 1.81 per hour since runs whose beats differ and irregular runs in atrial fibrillation are
    # withheld (2.72 before; 3.54 before a source without a pulse got the continuity veto chosen
    # without one); the target is 0.5
    assert vt["false_per_hour"] <= 2.0, vt
    assert c["asystole"]["false"] == 0 and c["extreme_bradycardia"]["false"] == 0
    vf = c["ventricular_fibrillation"]
    assert vf["missed"] == 0 and vf["false"] == 0, vf  # 207's flutter episodes, nowhere else
    # 203's AF alarm is raised within its first minute and stays on to the end of the record: the
    # later AF stretches (the annotation splits them at short flutter or noise breaks) are covered
    af = per["203"]["atrial_fibrillation"]
    assert af["true"] >= 1 and all(start < 60.0 for start, _, _ in af["missed_episodes"]), af
    assert c["atrial_fibrillation"]["latency_budget_s"] == 60.0 and vt["latency_budget_s"] == 10.0


def test_noise_stress_scores_beside_xqrs(noise_stress_dir):
    rows = {db: (s, x) for _, db, s, x in evaluate_noise_stress(noise_stress_dir, with_xqrs=True)}
    assert set(rows) == {24, 12, 6, 0}
    s24, x24 = rows[24]
    assert s24.se >= x24.se and s24.ppv >= x24.ppv  # a clean excerpt: both perfect, edges excluded alike
    assert rows[12][0].se >= 0.98
    assert rows[0][0].se <= rows[24][0].se  # the SNR ordering shows


@pytest.fixture(scope="module")
def cinc_logs(cinc_vt_dir):
    logs = collect(cinc_vt_dir, cache=None, jobs=2)  # one whole-record pass per alarm, nothing cached, both cores
    assert len(logs) == 170
    return logs


def test_vt_alarms_out_of_fold_beside_the_references(cinc_logs):
    report = cross_validated(cinc_logs, k=5)
    prev, ecg, pulse = report.counts(ROW_PREV), report.counts(ROW_ECG), report.counts(ROW_PULSE)
    assert prev.tpr >= 0.95  # the beat rule alone finds the true alarms ...
    assert prev.tnr < 0.6  # ... and alarms on many false ones
    # out of fold, the evidence checks keep most true alarms and withhold many more false ones
    assert pulse.tpr >= 0.8 and pulse.tnr >= prev.tnr + 0.15, report.format(200)
    assert ecg.tpr >= 0.8 and ecg.tnr > prev.tnr, report.format(200)
    assert all(len(v) == 5 for v in report.chosen.values())


def test_a_run_with_no_rhythm_before_it_needs_a_clearly_readable_lead(cinc_logs):
    # the bSQI bar for runs that no lead's earlier rhythm can be followed through: on the shared
    # alarms (in-sample) it withholds false alarms and no true one, with a pulse and without
    shipped = EvidenceLimits()
    assert shipped.min_bsqi_no_rhythm > shipped.min_bsqi
    off = dataclasses.replace(shipped, min_bsqi_no_rhythm=0.0)
    for use_pulse in (True, False):
        on_c = Counts.of((rl.truth, replay(rl, decider(shipped, use_pulse))[0]) for rl in cinc_logs.values())
        off_c = Counts.of((rl.truth, replay(rl, decider(off, use_pulse))[0]) for rl in cinc_logs.values())
        assert on_c.tp == off_c.tp and on_c.fp <= off_c.fp - 4, (on_c, off_c)


def test_a_run_with_no_usable_lead_is_withheld_and_no_true_alarm_has_one(cinc_logs):
    # v298s: a cable tug grows both leads 8-12x; with no bSQI bar (min_bsqi 0) such a run was
    # confirmed although check 1 asks for at least one usable lead
    none = {n: [e for e in rl.entries if e["kind"] == "vt" and e["usable_leads"] == 0] for n, rl in cinc_logs.items()}
    assert not [n for n, es in none.items() if es and cinc_logs[n].truth]
    assert sum(len(es) for es in none.values()) >= 50
    for use_pulse in (True, False):
        assert not replay(cinc_logs["v298s"], decider(EvidenceLimits(), use_pulse))[0]


def test_a_pulse_that_came_at_every_one_due_holds_a_run_the_ecg_reads_as_gone(cinc_logs):
    # v392s, v655l, v666s: the ECG (artifact) shows no normal beats going on, and every pulse due so
    # far came, but fewer than min_pulses were due; the run used to be confirmed there and then.
    # Now it waits for the pulses, which go on and veto it; no true alarm is lost in-sample.
    shipped = EvidenceLimits()
    d = decider(shipped, use_pulse=True)
    for name in ("v392s", "v655l", "v666s"):
        assert not cinc_logs[name].truth and not replay(cinc_logs[name], d)[0], name
    c = Counts.of((rl.truth, replay(rl, d)[0]) for rl in cinc_logs.values())
    assert c.fn == 2 and c.fp <= 15, c  # the two the beat rule never finds (v724s, v783l)


def test_the_run_similarity_bar_withholds_false_alarms_and_no_true_one(cinc_logs):
    # runs whose beats do not look alike (noise, motion): on the shared alarms (in-sample) the
    # shipped bar withholds 16 false alarms with a pulse and 18 without, and no true one
    shipped = EvidenceLimits()
    assert shipped.min_run_similarity > 0
    off = dataclasses.replace(shipped, min_run_similarity=0.0)
    for use_pulse in (True, False):
        on_c = Counts.of((rl.truth, replay(rl, decider(shipped, use_pulse))[0]) for rl in cinc_logs.values())
        off_c = Counts.of((rl.truth, replay(rl, decider(off, use_pulse))[0]) for rl in cinc_logs.values())
        assert on_c.tp == off_c.tp and on_c.fp <= off_c.fp - 10, (on_c, off_c)


def test_the_log_replay_decides_as_the_streamed_detector_does(cinc_logs, cinc_vt_dir):
    # records where the shipped limits change the previous detector's decision, and some where not
    shipped = EvidenceLimits()
    d = decider(shipped, use_pulse=True)
    changed = [n for n, rl in cinc_logs.items() if replay(rl, d)[0] != replay(rl, lambda f: True)[0]]
    same = [n for n in cinc_logs if n not in changed]
    names = changed[:4] + same[:2]
    assert len(changed) >= 4
    report = evaluate_alarms(cinc_vt_dir, lead_in_s=None, names=names)
    for r in report.results:
        assert r.raised == replay(cinc_logs[r.name], d)[0], r.name


def test_the_log_replay_of_a_long_record_raises_what_the_daemon_chain_raises(mitdb_dir):
    # MIT-BIH 203: annotated VT, and false VT alarms the shipped limits let through and withhold
    from edge_ecg.eval.alarm_cv import stream_log, stream_replay
    from edge_ecg.records import read_record

    hea = mitdb_dir / "203.hea"
    sl = stream_log(hea)
    for lim in (EvidenceLimits(), EvidenceLimits(enabled=False), EvidenceLimits(min_run_similarity=0.0, af_rr_cv=10.0)):
        cfg = {"evidence": {k: v for k, v in dataclasses.asdict(lim).items()}}
        streamed = [(a.onset, a.raised_at, a.offset) for a in replay_record(read_record(hea), cfg)[1]
                    if a.kind == "ventricular_tachycardia"]
        replayed = [(a.onset, a.raised_at, a.offset) for a in stream_replay(sl, decider(lim, use_pulse=False))]
        assert streamed and replayed == streamed, (lim, replayed, streamed)


def test_long_records_join_each_folds_selection_and_are_held_out_with_their_fold(cinc_logs, monkeypatch):
    # the selection is replaced by a spy that records what it was given: this checks the folds
    from edge_ecg.eval import alarm_cv
    from edge_ecg.eval.alarm_cv import StreamLog

    streams = {f"s{i}": StreamLog(f"s{i}", 360.0, 360 * 60, []) for i in range(12)}
    calls: list[tuple[frozenset, frozenset]] = []

    def spy(logs, use_pulse, longs=None, no_pulse=None):
        calls.append((frozenset(logs), frozenset(longs or {})))
        return EvidenceLimits()

    monkeypatch.setattr(alarm_cv, "select", spy)
    report = cross_validated(cinc_logs, k=5, seed=3, streams=streams)
    with_streams, calls[:] = list(calls), []
    cross_validated(cinc_logs, k=5, seed=3)
    # the alarms' folds are the same with or without long records
    assert [a for a, _ in with_streams] == [a for a, _ in calls]
    folds = [longs for alarms, longs in with_streams if alarms != frozenset(cinc_logs)]
    assert len(folds) == 10  # 5 folds, selected without and with a pulse
    for longs in folds:
        out = set(streams) - longs
        assert 2 <= len(out) <= 3  # 12 records over 5 folds; what a fold holds out it never selects on
    assert sorted(n for longs in folds[:5] for n in set(streams) - longs) == sorted(streams)  # each held out once
    assert set(report.streams[ROW_PULSE]) == set(streams) and report.stream_summary(ROW_PULSE)["hours"] == 0.2


def test_an_alarm_still_on_when_the_replay_ends_lasted_until_then():
    from edge_ecg.eval.stream_eval import Alarm, Reference

    fs = 100.0
    ref = Reference({"atrial_fibrillation": [(0, 4000), (7000, 9000)]})
    on = Alarm("r", "atrial_fibrillation", fs, onset=500, raised_at=6500, end=10_000)
    sc = score_alarms([on], ref, fs)["atrial_fibrillation"]
    assert on.true and sc["missed"] == 1 and sc["missed_episodes"][0][0] == 0.0  # only the first: 65 s late
    cut = Alarm("r", "atrial_fibrillation", fs, onset=500, raised_at=6500)  # never replayed to the end
    assert score_alarms([cut], ref, fs)["atrial_fibrillation"]["missed"] == 2
    # AF's budget is a minute (raised after 30 s of evidence); VT's is 10 s
    soon = Alarm("r", "atrial_fibrillation", fs, onset=500, raised_at=3500, end=10_000)
    assert score_alarms([soon], ref, fs)["atrial_fibrillation"]["missed"] == 0
    vt = Reference({"ventricular_tachycardia": [(0, 4000)]})
    late = Alarm("r", "ventricular_tachycardia", fs, onset=500, raised_at=1500)
    assert score_alarms([late], vt, fs)["ventricular_tachycardia"]["missed"] == 1


def test_a_false_vt_alarm_during_annotated_flutter_is_counted_apart_but_stays_false():
    from edge_ecg.eval.stream_eval import Alarm, Reference

    fs = 100.0
    ref = Reference({"ventricular_tachycardia": [], "ventricular_fibrillation": [(4000, 6000)]})
    on_flutter = Alarm("r", "ventricular_tachycardia", fs, onset=3900, raised_at=4200, offset=5000)
    elsewhere = Alarm("r", "ventricular_tachycardia", fs, onset=8000, raised_at=8300, offset=8600)
    sc = score_alarms([on_flutter, elsewhere], ref, fs)["ventricular_tachycardia"]
    assert sc["false"] == 2 and sc["false_on_vf"] == 1, "still false: the target counts every VT alarm off a VT episode"
    assert on_flutter.on_vf and not elsewhere.on_vf


def test_score_arithmetic():
    s = Score(tp=90, fn=10, fp=5)
    assert s.se == 0.9 and s.ppv == pytest.approx(90 / 95)
    assert np.isnan(Score().se)


def test_a_vt_rhythm_label_on_fewer_than_5_beats_is_a_short_run_not_an_episode():
    # MIT-BIH marks "(VT" on runs of 3 ventricular beats too; the CinC definition needs 5
    fs = 360.0
    normal = [0, 300, 600]
    run3 = [720, 840, 960]  # 3 ventricular beats at 180 bpm, rhythm-labelled "(VT"
    run5 = [1500 + 120 * i for i in range(5)]
    samples = np.array(normal + run3 + [1200] + run5 + [2300])
    symbols = ["N"] * 3 + ["V"] * 3 + ["N"] + ["V"] * 5 + ["N"]
    rhythms = [(0, "(N"), (700, "(VT"), (1100, "(N"), (1480, "(VT"), (2100, "(N")]
    ref = stream_eval.reference_from_beats(samples, symbols, fs, rhythms, n_samples=2400)
    vt = ref.episodes["ventricular_tachycardia"]
    assert len(vt) == 1 and vt[0][0] <= 1500 and vt[0][1] >= 1980, vt
    assert any(a <= 720 and b >= 960 for a, b in ref.short_v_runs), ref.short_v_runs


def test_the_shipped_evidence_limits_are_the_ones_the_committed_procedure_selected():
    import json
    from pathlib import Path

    from edge_ecg.eval.alarm_cv import ROW_ECG, ROW_PULSE, _limits_dict

    doc = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / "alarms-cinc2015-vt-cv.json").read_text())
    rows = doc["results"]["rows"]
    shipped = EvidenceLimits()
    assert rows[ROW_PULSE]["limits_all_records"] == _limits_dict(shipped)
    # the continuity limit where the pulse cannot speak is the one the ECG-only selection chose
    assert rows[ROW_ECG]["limits_all_records"]["ecg_continuity_no_pulse"] == shipped.ecg_continuity_no_pulse


def test_every_evidence_limit_has_a_direction_for_the_selections_tie_break():
    # a new check's limit without one would make the selection's ties (and its "off" start) undefined
    import dataclasses

    from edge_ecg.eval.alarm_cv import _INNER, _LENIENT, _OFF, GRID

    limits = {f.name for f in dataclasses.fields(EvidenceLimits)} - {"enabled"}
    assert set(_LENIENT) == limits
    assert set(GRID) | {"ecg_continuity_no_pulse"} == limits  # that one is searched on the ecg_continuity axis
    assert _OFF == {"min_run_similarity": 0.0, "af_rr_cv": 10.0} and set(_OFF) == set(_INNER)
