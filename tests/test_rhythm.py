"""Classical rhythm alarms: the CinC 2015 definitions, onsets/offsets with evidence, configurable limits."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.dsp import AnalyzerConfig, RhythmLimits, StreamAnalyzer
from edge_ecg.dsp.rhythm import RhythmDetector, vf_features
from edge_ecg.dsp.types import Beat
from edge_ecg.errors import ConfigError
from edge_ecg.eval.qrs_eval import stream_record
from edge_ecg.records import Record, read_record

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


def test_extreme_bradycardia_is_raised_once_the_open_interval_is_known_to_be_slow():
    """Four slow intervals, then no beat: 1.5 s after the last beat the fifth interval is below
    40 bpm whatever its end, so the condition is met then, not when that beat comes."""
    det = RhythmDetector(FS)
    assert not _feed(det, [70] * 10 + [35] * 4)
    last = det.last_beat
    assert not det.on_tick(last + int(1.4 * FS), 1.0, False), "1.4 s open: the interval may still end at 43 bpm"
    assert not det.on_tick(last + int(1.6 * FS), 0.0, False), "untrusted signal: withheld"
    assert not det.on_tick(last + int(1.6 * FS), 1.0, True), "leads off: withheld"
    on = det.on_tick(last + int(1.6 * FS), 1.0, False)
    assert [(e.kind, e.state) for e in on] == [("extreme_bradycardia", "onset")]
    assert len(on[0].evidence["rates_bpm"]) == 4 and on[0].evidence["open_interval_s"] == 1.6
    # the slow beat that closes the interval raises nothing more; a normal one ends it
    slow, normal = last + int(round(60 / 35 * FS)), last + int(round(60 / 35 * FS)) + int(round(60 / 70 * FS))
    assert not det.on_beat(Beat(index=slow, decided_at=slow + 50, ventricular=False, label="N", rr_s=(slow - last) / FS), 1.0)
    ev = det.on_beat(Beat(index=normal, decided_at=normal + 50, ventricular=False, label="N", rr_s=(normal - slow) / FS), 1.0)
    assert [(e.kind, e.state) for e in ev] == [("extreme_bradycardia", "offset")]
    # three slow intervals and a long pause: not yet five
    det = RhythmDetector(FS)
    _feed(det, [70] * 10 + [35] * 3)
    assert not [e for e in det.on_tick(det.last_beat + int(2.0 * FS), 1.0, False) if e.kind == "extreme_bradycardia"]


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
    with pytest.raises(ConfigError, match=r"edge-ecg.toml: dsp.rhythm.vt_beats: must be an integer"):
        AnalyzerConfig.from_dict({"rhythm": {"vt_beats": 3.5}}, "edge-ecg.toml: dsp")  # a type, not silently truncated


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


def _feed_labels(det: RhythmDetector, labels: str, hr: float = 150.0, start: int = 0):
    """Beats at ``hr`` labelled by the letters: V ventricular, a ambiguous normal, N confident normal."""
    events, idx = [], start
    for k, c in enumerate(labels):
        idx += int(round(60.0 / hr * FS))
        beat = Beat(index=idx, decided_at=idx + 50, ventricular=c == "V", label="V" if c == "V" else "N",
                    rr_s=None if k == 0 else 60.0 / hr, ambiguous=c == "a")
        events += det.on_beat(beat, 1.0)
    return [e for e in events if e.kind == "ventricular_tachycardia"]


def test_vt_run_may_bridge_one_ambiguous_beat_but_not_a_confident_normal_one():
    # one loosely matching "normal" beat inside a fast ventricular run does not hide the VT ...
    on = _feed_labels(RhythmDetector(FS), "NNNNVVaVVN")
    assert [e.state for e in on] == ["onset", "offset"]
    assert len(on[0].evidence["ambiguous_beats"]) == 1 and len(on[0].evidence["beats"]) == 5
    assert _feed_labels(RhythmDetector(FS), "NNNaVVVVN")[0].state == "onset"  # run opened by an ambiguous beat
    # ... a confidently normal beat ends the run, and two ambiguous beats within five are too many
    assert not _feed_labels(RhythmDetector(FS), "NNNNVVNVVN")
    assert not _feed_labels(RhythmDetector(FS), "NNNNVaVaVN")
    assert not _feed_labels(RhythmDetector(FS), "NNNNaaaaaaN")  # ambiguous beats alone are no VT
    # the tolerance is a limit like the others: 0 gives the strict CinC reading
    assert not _feed_labels(RhythmDetector(FS, RhythmLimits(vt_ambiguous=0)), "NNNNVVaVVN")
    # VT stays on through one ambiguous beat and ends at the next confident normal one
    on = _feed_labels(RhythmDetector(FS), "NVVVVVVaVVN")
    assert [e.state for e in on] == ["onset", "offset"] and on[1].index == on[0].index + 9 * 100


def _events(mitdb_dir, name, a_s, b_s):
    rec = read_record(mitdb_dir / f"{name}.hea").slice(int(a_s * 360), int(b_s * 360))
    return stream_record(rec, 1.0)[1]


def test_vf_needs_waves_without_discernible_qrs(mitdb_dir):
    """Ventricular flutter in 207 raises VF; the fast VT runs of 203 and 205 (sinusoid-like to the
    spectrum, but with steep QRS upstrokes) raise VT, not VF."""
    fl = [e for e in _events(mitdb_dir, "207", 30, 64) if e.kind == "ventricular_fibrillation" and e.state == "onset"]
    assert len(fl) == 2  # the flutter episodes at 40.7-51.0 s and 54.8-60.4 s
    assert all(min(v["slope_ratio"] for v in e.evidence["leads"].values()) <= 2.4 for e in fl)
    for name, a, b in (("205", 285, 315), ("205", 1450, 1485), ("203", 295, 315)):
        kinds = {e.kind for e in _events(mitdb_dir, name, a, b) if e.state == "onset"}
        assert "ventricular_fibrillation" not in kinds, (name, a)
    assert "ventricular_tachycardia" in {e.kind for e in _events(mitdb_dir, "205", 285, 315)}


@pytest.mark.parametrize("bpm", [60, 70, 80])
@pytest.mark.parametrize("width_s", [0.04, 0.08])
def test_a_regular_broad_complex_rhythm_whose_harmonic_dominates_is_not_vf(bpm, width_s):
    """Broad complexes at an ordinary rate put their power in their second harmonic (70 bpm: 2.33
    Hz, the 2 s window's 2.5 Hz bin): dominant in the VF band, concentrated, smooth. The spectral
    test alone raised VF at the start and held it, hiding the beats; the detector sees regular
    complexes at half the dominant frequency, an organised rhythm."""
    fs = 250.0
    t = np.arange(int(30 * fs)) / fs
    x = np.zeros_like(t)
    for b in np.arange(0.5, 30, 60 / bpm):
        u = (t - b) / width_s
        x += -800.0 * np.exp(-0.5 * u**2) * (1 - u**2)
    rec = Record(signals=x[:, None].astype(np.float32), fs=fs, leads=("I",), name="broad", source="synthetic")
    beats, events = stream_record(rec, 1.0)
    assert not [e for e in events if e.kind == "ventricular_fibrillation"]
    assert len(beats) >= 30 * bpm / 60 - 2


def test_a_handheld_strip_of_broad_complexes_at_78_bpm_is_not_vf(ecg_root):
    # CinC 2017 A00593 (class "other rhythm"): VF was raised at 1 s and held for 20 s (dominant
    # 2.5 Hz, concentration 0.62, slope ratio 2.1), and the beats went unreported meanwhile
    cinc = ecg_root / "cinc2017"
    if not cinc.is_dir():
        pytest.skip("cinc2017 not present")
    rec = read_record(cinc / "A00593.hea")
    beats, events = stream_record(rec, 1.0)
    assert not [e for e in events if e.kind == "ventricular_fibrillation"]
    t = np.array([b.index for b in beats]) / rec.fs
    assert np.diff(t).max() < 1.2 and t[-1] > rec.n_samples / rec.fs - 1.5


def test_slope_ratio_is_one_for_a_sinusoid_and_large_for_qrs_complexes(mitdb_dir):
    from edge_ecg.dsp.filters import MonitorFilter
    from edge_ecg.dsp.rhythm import slope_ratio

    t = np.arange(500) / 250.0
    assert slope_ratio(np.sin(2 * np.pi * 4.0 * t), 250.0, np.array([4.0]))[0] == pytest.approx(1.0, abs=0.05)
    x = MonitorFilter(360, 2)(read_record(mitdb_dir / "119.hea").slice(0, 4 * 360).signals.astype(float))[360 : 3 * 360]
    fdom, _, _ = vf_features(x, 360)
    assert (slope_ratio(x, 360, fdom) > 3.0).all()


def _beat_shapes(fs: float = 250.0):
    """A narrow upright QRS and a wide, inverted ventricular complex (2 leads), as cut by the detector."""
    t = (np.arange(int(0.28 * fs)) - int(0.12 * fs)) / fs  # [R - 120 ms, R + 160 ms)
    narrow = np.exp(-0.5 * (t / 0.012) ** 2)
    wide = -np.exp(-0.5 * ((t - 0.03) / 0.035) ** 2) + 0.4 * np.exp(-0.5 * ((t + 0.02) / 0.02) ** 2)
    return np.stack([narrow, 0.5 * narrow], axis=1), np.stack([wide, 0.7 * wide], axis=1)


def _classify(clf, seg, prem):
    slope = np.r_[0.0, np.diff(seg @ np.array([0.5, 0.5]))] ** 2
    return clf.classify(seg, slope, np.array([0.5, 0.5]), prem)[0]


def test_sustained_fast_ventricular_run_never_becomes_the_dominant_beat():
    from edge_ecg.dsp.morphology import BeatClassifier

    narrow, wide = _beat_shapes()
    clf = BeatClassifier(250.0, 2, int(0.12 * 250))
    assert {_classify(clf, narrow, 1.0) for _ in range(20)} - {"Q"} == {"N"}
    # two minutes of VT at 150 bpm after sinus at 75: every beat stays ventricular
    assert {_classify(clf, wide, 0.5) for _ in range(300)} == {"V"}
    assert _classify(clf, narrow, 1.0) == "N"


def test_a_wide_dominant_beat_is_ventricular_until_it_is_seen_at_a_normal_rate():
    from edge_ecg.dsp.morphology import BeatClassifier

    narrow, wide = _beat_shapes()

    def labels(shapes_rr):
        clf = BeatClassifier(250.0, 2, int(0.12 * 250))
        out = []
        for seg, rr in shapes_rr:
            slope = np.r_[0.0, np.diff(seg @ np.array([0.5, 0.5]))] ** 2
            out.append(clf.classify(seg, slope, np.array([0.5, 0.5]), 1.0, rr_s=rr)[0])
        return clf, out

    # switched on during a wide-complex tachycardia at 150 bpm: the template is the VT beat, which
    # every later beat matches; still each is ventricular (before this, all were "N": no alarm)
    clf, vt = labels([(wide, 0.4)] * 30)
    assert clf.template_width >= 0.12 and vt[:5] == ["Q"] * 5 and set(vt[6:]) == {"V"}, vt
    # the same wide beat at 75 bpm first (a bundle-branch block): conducted, and it stays normal
    # when the rate rises past 100 bpm (sinus tachycardia with the block)
    _, bbb = labels([(wide, 0.8)] * 12 + [(wide, 0.4)] * 30)
    assert set(bbb[6:]) == {"N"}, bbb
    # one long interval inside the tachycardia (a missed beat) does not count as a normal rate
    _, missed = labels([(wide, 0.4)] * 10 + [(wide, 0.8)] + [(wide, 0.4)] * 10)
    assert set(missed[6:]) == {"V"}, missed
    # a narrow dominant beat at 150 bpm is sinus tachycardia: normal
    _, st = labels([(narrow, 0.4)] * 30)
    assert set(st[6:]) == {"N"}, st
    # the clinician's relearn (the rhythm is this patient's own): learned again, and conducted
    clf.relearn()
    slope = np.r_[0.0, np.diff(wide @ np.array([0.5, 0.5]))] ** 2
    again = [clf.classify(wide, slope, np.array([0.5, 0.5]), 1.0, rr_s=0.4)[0] for _ in range(20)]
    assert again[:5] == ["Q"] * 5 and set(again[6:]) == {"N"}, again


def test_a_lost_template_is_relearned_when_beats_keep_the_dominant_rate():
    from edge_ecg.dsp.morphology import BeatClassifier

    narrow, _ = _beat_shapes()
    rng = np.random.default_rng(5)
    clf = BeatClassifier(250.0, 2, int(0.12 * 250))
    for _ in range(20):
        _classify(clf, narrow, 1.0)
    # a template that nothing matches any more (artifact-shaped beats at the old rate): it is
    # dropped after a run of unmatched beats, so no endless "ventricular" run follows
    labels = [_classify(clf, narrow * rng.normal(1, 0.05, narrow.shape) + rng.normal(0, 0.3, narrow.shape), 1.0)
              for _ in range(40)]
    assert "Q" in labels[25:35] and labels[:25].count("Q") == 0


def test_normal_beats_whose_r_peak_jumps_to_the_s_wave_stay_normal(mitdb_dir):
    # MIT-BIH 112: a biphasic QRS, so the detector's largest deflection jumps between R and S from
    # beat to beat; unaligned, half of these normal beats correlated negatively with their own
    # template and were labelled ventricular (the record has no ventricular beat at all)
    import wfdb

    rec = read_record(mitdb_dir / "112.hea").slice(0, 180 * 360)
    beats, _ = stream_record(rec, 1.0)
    ann = wfdb.rdann(str(mitdb_dir / "112"), "atr", sampto=180 * 360)
    assert not set(ann.symbol) & {"V", "E"}
    assert len(beats) > 200
    assert sum(b.ventricular for b in beats) <= 0.01 * len(beats), sum(b.ventricular for b in beats)


def test_a_short_run_still_awaiting_its_evidence_is_alarmed_when_it_ends():
    from edge_ecg.dsp.vt_evidence import WAITING

    def gate(pending):
        return lambda run, beat: (False, {"judgement": WAITING if pending else "normal beats go on", "pending": pending})

    for pending, expected in ((True, ["onset", "offset"]), (False, [])):
        det = RhythmDetector(FS)
        det.vt_gate = gate(pending)
        _feed(det, [75] * 8)
        during = [e for e in _feed(det, [150] * 6, ventricular=True, start=8 * 200) if e.kind == "ventricular_tachycardia"]
        assert during == []  # withheld while the run lasts
        after = [e for e in _feed(det, [75], start=10**6) if e.kind == "ventricular_tachycardia"]
        assert [e.state for e in after] == expected, pending
        if pending:
            onset, offset = after
            assert "run ended" in onset.evidence["judgement"] and onset.index < offset.index
            assert "pending" not in onset.evidence


def test_a_beat_cut_off_by_the_start_of_the_stream_is_never_the_template(mitdb_dir):
    # MIT-BIH 223, the monitor switched on exactly at a PVC's R peak (1023.525 s): the detector's
    # first segment is mostly padding. Learned as the template, nothing matched it, the frequent
    # PVCs kept the normal beats from taking over, and the VT run at 1043.5 s was labelled normal.
    events = _events(mitdb_dir, "223", 1023.525, 1054.5)
    onsets = [e.index / 360 for e in events if e.kind == "ventricular_tachycardia" and e.state == "onset"]
    assert onsets and abs(onsets[0] - (1043.53 - 1023.525)) < 1.0, onsets


def test_a_truncated_first_beat_is_not_one_of_the_beats_the_template_is_learned_from():
    from edge_ecg.dsp.morphology import BeatClassifier

    narrow, wide = _beat_shapes()
    clf = BeatClassifier(250.0, 2, int(0.12 * 250))
    slope = np.r_[0.0, np.diff(wide @ np.array([0.5, 0.5]))] ** 2
    assert clf.classify(wide, slope, np.array([0.5, 0.5]), 1.0, whole=False)[0] == "Q"
    assert clf.template is None
    labels = [_classify(clf, narrow, 1.0) for _ in range(6)]
    assert labels[-1] == "N" and np.allclose(clf.template, narrow[clf.a : clf.b])


def test_a_monitor_switched_on_at_a_pvc_learns_the_normal_beat(mitdb_dir):
    # MIT-BIH 215 (sinus at about 110 bpm, frequent PVCs), streamed from just before a PVC: learned
    # from that first beat, the template was the PVC, the normal beats after it were all "V" and VT
    # was raised about a second after switch-on. There is no ventricular run in this minute.
    events = _events(mitdb_dir, "215", 25.4, 85.4)
    assert not [e for e in events if e.kind == "ventricular_tachycardia"]


def test_the_template_is_the_beat_most_learning_beats_match_and_bigeminy_ties_go_to_the_narrower():
    from edge_ecg.dsp.morphology import BeatClassifier

    narrow, wide = _beat_shapes()
    clf = BeatClassifier(250.0, 2, int(0.12 * 250))
    # bigeminy from a PVC: wide, narrow, wide, narrow, ...
    labels = [_classify(clf, wide if i % 2 == 0 else narrow, 1.0 if i % 2 == 0 else 1.2) for i in range(12)]
    assert labels[:5] == ["Q"] * 5  # learning
    assert labels[6:] == ["V", "N"] * 3
    assert np.allclose(clf.template, narrow[clf.a : clf.b], atol=1e-6)
