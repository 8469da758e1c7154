"""``StreamAnalyzer``: the whole causal chain on a live stream of ``SampleBlock``s.

filters -> QRS detector -> beat morphology -> heart rate -> signal quality -> rhythm detectors.
One instance per stream, fed from one thread (the daemon's pipeline thread); it keeps a short
history so ``window_quality`` can judge any recent window the model is about to classify.

Heart rate (IEC 60601-2-27 asks that the averaging be stated): the displayed rate is
60 / (mean of the last ``hr_beats`` = 8 RR intervals), updated at every beat; RR intervals across
a gap are not used; the rate is blank (None) while asystole is active or before two intervals.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Sequence

import numpy as np

from edge_ecg.dsp.af import AfDetector
from edge_ecg.dsp.config import AnalyzerConfig
from edge_ecg.dsp.filters import MonitorFilter, hold_nan
from edge_ecg.dsp.morphology import BeatClassifier
from edge_ecg.dsp.pulse import PulseHistory, pulse_evidence
from edge_ecg.dsp.qrs import QrsDetector
from edge_ecg.dsp.quality import leads_quality, window_quality
from edge_ecg.dsp.rhythm import RhythmDetector, slope_ratio, vf_features
from edge_ecg.dsp.sqi import lead_sqi, rail_fraction
from edge_ecg.dsp.types import AnalysisUpdate, Beat, LeadQuality, RhythmEvent, WindowQuality
from edge_ecg.dsp.vt_evidence import WAITING, RunEvidence, judge, lead_continuity, run_similarity, waiting_for
from edge_ecg.errors import InputError
from edge_ecg.stream.block import SampleBlock

log = logging.getLogger(__name__)

_MAX_FILLED_GAP_S = 10.0  # longer gaps restart beat detection (levels would be stale anyway)
# VF needs a lead whose waves are this smooth (rhythm.slope_ratio): flutter waves measure
# <= 2.3 on MIT-BIH DS1 207, the QRS complexes of fast VT (203, 205) >= 2.56
_VF_MAX_SLOPE_RATIO = 2.4
# an organised rhythm is not VF (``_organised_train``): at least this many intervals over the last
# span, varying by at most this coefficient, still coming, at most 1/ratio of the dominant frequency
_ORGANISED_SPAN_S, _ORGANISED_INTERVALS, _ORGANISED_RR_CV, _HARMONIC_RATIO = 6.0, 3, 0.15, 1.75
_EVIDENCE_S = 8.0  # the evidence checks look at most this far back from the decision
_BEFORE_S = 8.0  # ... and learn the rhythm before a run from this long before its first beat
_MAX_RAIL = 0.02  # a lead with more of the run on its rails (clipped) is not usable for judging it
_MAX_GROWTH = 5.0  # ... nor one whose size grew more than this over the 5 s before the run
_VF_PULSE_LOST = 0.5  # fibrillation is withheld while at least this share of due pulses still comes


class _History:
    """The last ``cap`` samples of raw (gaps held), filtered and lead-off columns."""

    def __init__(self, cap: int, n_leads: int) -> None:
        self.cap = cap
        self.raw = np.zeros((2 * cap, n_leads))
        self.filt = np.zeros((2 * cap, n_leads))
        self.off = np.zeros((2 * cap, n_leads), dtype=bool)
        self.n = 0
        self.start = 0  # stream index of row 0

    def append(self, start: int, raw: np.ndarray, filt: np.ndarray, off: np.ndarray) -> None:
        if self.n == 0:
            self.start = start
        k = raw.shape[0]
        if k >= self.cap:
            raw, filt, off = raw[-self.cap :], filt[-self.cap :], off[-self.cap :]
            self.start = start + k - self.cap
            self.n = 0
            k = self.cap
        if self.n + k > 2 * self.cap:
            drop = self.n + k - self.cap
            keep = self.n - drop
            for a in (self.raw, self.filt, self.off):
                a[:keep] = a[drop : self.n]
            self.start += drop
            self.n = keep
        self.raw[self.n : self.n + k] = raw
        self.filt[self.n : self.n + k] = filt
        self.off[self.n : self.n + k] = off
        self.n += k

    @property
    def stop(self) -> int:
        return self.start + self.n

    def span(self, start: int, stop: int) -> tuple[slice, float]:
        a = max(start, self.start)
        b = min(stop, self.stop)
        cov = max(b - a, 0) / max(stop - start, 1)
        return slice(a - self.start, max(b, a) - self.start), cov


class StreamAnalyzer:
    """Causal analysis of one ECG stream; ``process(block)`` returns an ``AnalysisUpdate``.

    ``fs`` and ``leads`` must match every block (a mismatch is an ``InputError`` naming both).
    Output is identical however the stream is cut into blocks (the beats and their indices).
    """

    def __init__(self, fs: float, leads: Sequence[str], config: AnalyzerConfig | None = None) -> None:
        self.fs = float(fs)
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise InputError("StreamAnalyzer", f"sampling rate must be positive, got {fs!r}")
        self.leads = tuple(leads)
        if not self.leads:
            raise InputError("StreamAnalyzer", "needs at least one lead")
        self.config = config or AnalyzerConfig()
        self.config.validate()
        self.n_leads = len(self.leads)
        self._filter = MonitorFilter(self.fs, self.n_leads, self.config.filters)
        self._hold_last = np.zeros(self.n_leads)
        self._pending: tuple[list, list] = ([], [])
        self._hist = _History(int(round(self.config.history_s * self.fs)), self.n_leads)
        self.rhythm = RhythmDetector(self.fs, self.config.rhythm)
        self._pulses: dict[str, PulseHistory] = {}
        self._recent: deque = deque(maxlen=96)  # (index, label) of recent beats, for the evidence checks
        self.use_pulse = True  # False: judge VT/VF on the ECG alone even when a pulse arrives
        self.evidence_log: list | None = None  # a list: every judgement is appended (evaluation caches)
        if self.config.evidence.enabled:
            self.rhythm.vt_gate = self._vt_gate
            self.rhythm.vf_gate = self._vf_gate
            self.rhythm.on_run_end = self._run_end
        self.af = AfDetector(self.fs, self.config.af)
        self._new_detector()
        self._rr: deque = deque(maxlen=self.config.hr_beats)
        self._nn: deque = deque(maxlen=self.config.hr_beats)
        self._last_label = "Q"
        self._last_index: int | None = None
        self._next: int | None = None  # expected start of the next block
        self._q_step = max(int(round(1.0 * self.fs)), 1)
        self._q_win = int(round(2.0 * self.fs))
        self._vf_win = int(round(2.0 * self.fs))
        self.lead_quality: tuple[LeadQuality, ...] = tuple(LeadQuality(l, 1.0) for l in self.leads)
        self.quality_score = 1.0
        self.beats_total = 0

    def _new_detector(self) -> None:
        self.qrs = QrsDetector(self.fs, self.n_leads, self.config.qrs)
        self.qrs.on_beat = self._on_detection
        self.classifier = BeatClassifier(self.fs, self.n_leads, self.qrs.pre, self.qrs.pre + self.qrs.post)
        self._last_index = None

    # ------------------------------------------------------------------------------------------
    @property
    def heart_rate(self) -> float | None:
        if "asystole" in self.rhythm.active or len(self._rr) < 2:
            return None
        return round(60.0 / float(np.mean(self._rr)), 1)

    @property
    def decision_delay(self) -> int:
        """Samples after which every beat with an earlier R peak has been decided."""
        return self.qrs.look + self.qrs.locate + 1

    def process(self, block: SampleBlock) -> AnalysisUpdate:
        """Analyse one block; beats, rate, quality and rhythm events it completes."""
        self._check(block)
        for ch in block.aux:
            hist = self._pulses.get(ch.name)
            if hist is None or hist.fs != float(ch.fs):
                hist = self._pulses[ch.name] = PulseHistory(ch.name, ch.fs, self.config.history_s)
            hist.append(ch)
        events: list[RhythmEvent] = []
        beats: list[Beat] = []
        if self._next is not None and block.gap_before > 0:
            gap = int(block.gap_before)
            if gap <= _MAX_FILLED_GAP_S * self.fs:
                # a short gap is fed as held samples flagged lead-off: indices stay continuous
                filler = SampleBlock(
                    start=self._next, samples=np.full((gap, self.n_leads), np.nan, dtype=np.float32),
                    fs=block.fs, leads=block.leads, lead_off=np.ones((gap, self.n_leads), dtype=bool))
                self._run(filler, beats, events)
            else:
                log.info("gap of %.1f s before sample %d: beat detection restarts", gap / self.fs, block.start)
                self._new_detector()
                self._rr.clear()
                self._nn.clear()
                self._hist = _History(self._hist.cap, self.n_leads)  # history must stay contiguous
                self.rhythm.last_beat, self.rhythm.start = None, block.start  # no asystole across the gap
                self.af.reset_window()
        self._run(block, beats, events)
        self._next = block.stop
        return AnalysisUpdate(
            start=block.start, stop=block.stop, beats=tuple(beats), heart_rate=self.heart_rate,
            quality=self.lead_quality, events=tuple(events), active=frozenset(self.rhythm.active) | self.af.active_kinds)

    def relearn(self) -> dict:
        """Learn the patient's dominant beat anew (the operator says the rhythm now is the
        patient's own; ``BeatClassifier.relearn``). Returns what was forgotten, for the log."""
        cls = self.classifier
        before = None if cls.template is None else round(float(cls.template_width), 3)
        cls.relearn()
        return {"previous_template_width_s": before}

    def window_quality(self, start: int, stop: int) -> WindowQuality:
        """Quality of the samples [start, stop) still held in the history (``history_s``)."""
        if stop <= start:
            raise InputError("window_quality", f"empty window [{start}, {stop})")
        sl, cov = self._hist.span(start, stop)
        h = self._hist
        return window_quality(self.leads, h.raw[sl], h.filt[sl], h.off[sl], self.fs, start, stop,
                              self.config.rhythm.min_quality, coverage=cov)

    # ------------------------------------------------------------------------------------------
    def _check(self, block: SampleBlock) -> None:
        if abs(block.fs - self.fs) > 1e-6:
            raise InputError(f"block at sample {block.start}", f"sampling rate {block.fs} Hz, analyzer runs at {self.fs} Hz")
        if tuple(block.leads) != self.leads:
            raise InputError(f"block at sample {block.start}", f"leads {block.leads} differ from the analyzer's {self.leads}")
        if block.samples.ndim != 2 or block.samples.shape[1] != self.n_leads:
            raise InputError(f"block at sample {block.start}", f"samples shape {block.samples.shape}, expected (n, {self.n_leads})")

    def _run(self, block: SampleBlock, beats: list[Beat], events: list[RhythmEvent]) -> None:
        """Cut the block at whole seconds of stream index, where the clock-driven parts run.

        Quality, the VF test and the detector's lead weighting then change at the same stream
        positions whatever the caller's block size, so the output does not depend on the cut.
        """
        n = block.n
        a = 0
        while a < n:
            tick = ((block.start + a) // self._q_step + 1) * self._q_step
            b = min(n, tick - block.start)
            self._run_part(block, a, b, beats, events)
            if block.start + b == tick:
                self._quality_tick(tick)
                events += self._vf_tick(tick)
            a = b

    def _run_part(self, block: SampleBlock, a: int, b: int, beats: list[Beat], events: list[RhythmEvent]) -> None:
        x = np.asarray(block.samples[a:b], dtype=np.float64)
        n = x.shape[0]
        start = block.start + a
        off = np.zeros((n, self.n_leads), dtype=bool) if block.lead_off is None else np.asarray(block.lead_off[a:b], dtype=bool)
        held = hold_nan(x, self._hold_last)
        filt = self._filter(held)
        self._hist.append(start, held, filt, off)
        pacer = None
        if len(block.pacer):
            p = np.asarray(block.pacer, dtype=np.int64)
            p = p[(p >= a) & (p < b)] - a
            pacer = p if len(p) else None
        self._pending = (beats, events)
        self.qrs.process(held, start, pacer, broad=filt)  # beats arrive through _on_detection
        # asystole is a flat line: flatness must not withhold it, lead-off and artifact must
        lim = self.config.rhythm.min_quality
        trusted = any(not q.lead_off and (q.flat or q.score >= lim) for q in self.lead_quality)
        events += self.rhythm.on_tick(start + n - self.decision_delay, 1.0 if trusted else 0.0, not trusted)
        if "asystole" in self.rhythm.active:
            self._rr.clear()

    def _on_detection(self, det) -> None:
        """Classify each beat as the detector commits it, before its next decision: a fast
        ventricular rhythm narrows the detector's peak window (VT at 250 bpm has 240 ms RR)."""
        beats, events = self._pending
        beat = self._beat(det)
        if "ventricular_fibrillation" not in self.rhythm.active:
            beats.append(beat)
        # during VF/flutter the detections are fibrillation or flutter waves, not QRS complexes
        # (the VF test requires that): they are not reported as beats, but still tell the rhythm
        # logic that there is electrical activity (no asystole)
        events += self.rhythm.on_beat(beat, self.quality_score)
        self._recent.append((beat.index, beat.label))
        if "ventricular_fibrillation" not in self.rhythm.active:
            events += self.af.on_beat(beat, self._p_segment(beat.index), self.quality_score)
        self.qrs.fast = bool(beat.ventricular and beat.rr_s is not None and beat.rr_s < 0.6)

    def _p_segment(self, index: int) -> np.ndarray | None:
        """The filtered samples of the P-wave window before the R peak at ``index`` (for AF)."""
        a, b = self.af.segment_bounds(index, self.fs)
        sl, cov = self._hist.span(a, b)
        return self._hist.filt[sl] if cov >= 1.0 else None

    def _beat(self, det) -> Beat:
        rr = None
        if self._last_index is not None:
            rr = (det.index - self._last_index) / self.fs
        # prematurity against the dominant rhythm (normal-to-normal intervals), so that every beat
        # of a ventricular run counts as early, not just its first
        ref = self._nn if self._nn else self._rr
        mean_rr = float(np.mean(ref)) if ref else None
        prem = rr / mean_rr if (rr and mean_rr) else 1.0
        if self.af.active_kinds:
            # in atrial fibrillation every short interval looks premature, so prematurity says
            # nothing about a beat's origin: it is judged on its shape alone (docs/dsp-alarms.md)
            prem = 1.0
        label, feat = self.classifier.classify(det.segment, det.slope, det.lead_weights, prem, whole=not det.truncated, rr_s=rr)
        if rr is not None:
            self._rr.append(rr)
            if label == "N" and self._last_label == "N":
                self._nn.append(rr)
        self._last_index = det.index
        self._last_label = label
        self.beats_total += 1
        return Beat(index=int(det.index), decided_at=int(det.decided_at), ventricular=label == "V", label=label,
                    rr_s=None if rr is None else round(float(rr), 4), width_s=round(float(feat.width_s), 4),
                    correlation=round(float(feat.correlation), 3), ambiguous=bool(feat.ambiguous))

    def _quality_tick(self, t: int) -> None:
        sl, cov = self._hist.span(t - self._q_win, t)
        if cov <= 0:
            return
        h = self._hist
        self.lead_quality = leads_quality(self.leads, h.raw[sl], h.filt[sl], h.off[sl], self.fs)
        self.quality_score = max(q.score for q in self.lead_quality) * cov
        self.qrs.lead_ok = np.array([not (q.lead_off or q.flat) for q in self.lead_quality])

    def _vf_tick(self, t: int) -> list[RhythmEvent]:
        sl, cov = self._hist.span(t - self._vf_win, t)
        if cov < 0.99:
            return []
        h = self._hist
        votes, feats = [], {}
        use = [j for j, q in enumerate(self.lead_quality) if not (q.lead_off or q.flat or q.score < 0.3)]
        if use:
            x = h.filt[sl][:, use]
            fdom, conc, leak = vf_features(x, self.fs)
            sr = slope_ratio(x, self.fs, fdom)
            for i, j in enumerate(use):
                feats[self.leads[j]] = {"dominant_hz": round(float(fdom[i]), 2), "concentration": round(float(conc[i]), 2),
                                        "leakage": round(float(leak[i]), 2), "slope_ratio": round(float(sr[i]), 2)}
                votes.append(bool(2.5 <= fdom[i] <= 8.0 and conc[i] >= 0.45 and leak[i] <= 0.7))
            # no discernible QRS: at least one lead's waves are as smooth as a sinusoid (fast VT's are not)
            votes.append(bool(np.min(sr) <= _VF_MAX_SLOPE_RATIO))
        is_vf = bool(votes) and all(votes) and self.quality_score >= self.config.rhythm.min_quality
        evidence: dict = {"leads": feats, "quality": round(self.quality_score, 3)}
        if is_vf:
            train = self._organised_train(t, float(np.min(fdom)))
            if train is not None:
                is_vf = False
                evidence["organised_rhythm"] = train
        return self.rhythm.on_vf_window(t, is_vf, evidence, self._vf_win / self.fs)

    def _organised_train(self, t: int, fdom: float) -> dict | None:
        """The detected beats before ``t`` as an organised rhythm whose harmonic is the dominant
        frequency, or None.

        Broad complexes at an ordinary rate (a handheld strip at 78 bpm, CinC 2017 A00593) put
        their power in their second harmonic: 2.5 Hz dominant and concentrated, smooth waves, and
        the spectral VF test passes on a rhythm that is not fibrillating. The detector sees what the
        spectrum cannot: discrete complexes at regular intervals, still coming, at half the
        dominant frequency or slower. Fibrillation and flutter waves are detected at about their
        own frequency (MIT-BIH 207: dominant 2.5-3.5 Hz against detections 0.27-0.53 s apart), or
        irregularly, or not at all (fine VF: the open interval since the last beat grows), so none
        of them is a train like this."""
        beats = self._beats_before(t, _ORGANISED_SPAN_S)
        if len(beats) < _ORGANISED_INTERVALS + 1:
            return None
        rr = np.diff(beats)
        med = float(np.median(rr))
        cv = float(rr.std() / rr.mean())
        ongoing = (t - self.decision_delay) / self.fs - beats[-1] <= 1.5 * med
        if cv > _ORGANISED_RR_CV or not ongoing or fdom * med < _HARMONIC_RATIO:
            return None
        return {"rate_bpm": round(60.0 / med, 1), "rr_cv": round(cv, 3), "beats": int(len(beats)),
                "why": f"regular complexes at {60.0 / med:.0f} bpm: the dominant {fdom:g} Hz is their harmonic, not fibrillation"}

    # -- evidence for VT/VF (vt_evidence.py) ----------------------------------------------------
    def _beats_before(self, onset: int, span_s: float = _BEFORE_S) -> np.ndarray:
        """Times (s) of the recent beats in the ``span_s`` before stream index ``onset``."""
        return np.array([i for i, _ in self._recent if onset - span_s * self.fs <= i < onset], dtype=np.float64) / self.fs

    @property
    def has_pulse(self) -> bool:
        """A pulsatile channel has arrived and is to be used. Without one, every run is judged on the
        ECG alone, with the continuity limit chosen so (``judge``)."""
        return self.use_pulse and bool(self._pulses)

    def _pulse_evidence(self, onset: int, now: int) -> tuple:
        if not self.has_pulse:
            return ()
        beats = self._beats_before(onset)
        return tuple(pulse_evidence(h, beats, onset / self.fs, now / self.fs, _BEFORE_S) for h in self._pulses.values())

    def _ecg_continuity(self, onset: int, now: int) -> tuple:
        """Per lead: do the patient's normal complexes (the running template) go on through the run?"""
        cls = self.classifier
        none = (None,) * self.n_leads
        if cls.template is None or cls.n_matched < 8:
            return none
        start = max(onset - int(_BEFORE_S * self.fs), now - int(2 * _EVIDENCE_S * self.fs))
        sl, cov = self._hist.span(start, now)
        if cov < 0.9:
            return none
        x = self._hist.filt[sl]
        t0 = (now - x.shape[0]) / self.fs
        r_off = cls.pre - cls.a
        out = []
        for j in range(self.n_leads):
            q = self.lead_quality[j]
            if q.lead_off or q.flat:
                out.append(None)
                continue
            out.append(lead_continuity(x[:, j], cls.template[:, j], r_off, self.fs, t0, onset / self.fs, now / self.fs))
        return tuple(out)

    def _run_evidence(self, onset: int, now: int, run: list | None = None) -> RunEvidence:
        """Per-lead quality over the run (from half a second before it), what goes on underneath."""
        fs = self.fs
        start = max(onset - int(0.5 * fs), now - int(_EVIDENCE_S * fs))
        sl, _ = self._hist.span(start, now)
        x, raw = self._hist.filt[sl], self._hist.raw[sl]
        sqi = tuple(lead_sqi(self.leads[j], x[:, j], fs) for j in range(self.n_leads))
        # a lead is usable over the run unless off, flat, on its rails, or suddenly many times larger
        # than before (a QRS of VT is at most a few times a sinus QRS; a cable tug is ten times)
        psl, _ = self._hist.span(start - int(5.0 * fs), start)
        pre = self._hist.filt[psl]
        clip = rail_fraction(raw)
        size = np.percentile(x, 99, axis=0) - np.percentile(x, 1, axis=0) if x.shape[0] > 4 else np.zeros(self.n_leads)
        size0 = np.percentile(pre, 99, axis=0) - np.percentile(pre, 1, axis=0) if pre.shape[0] > fs else size
        ratio = size / np.maximum(size0, 1.0)
        usable = tuple(bool(not (q.lead_off or q.flat) and clip[j] < _MAX_RAIL and ratio[j] <= _MAX_GROWTH)
                       for j, q in enumerate(self.lead_quality))
        extra: dict = {"rail": [round(float(c), 3) for c in clip], "growth": [round(float(r), 2) for r in ratio]}
        if run:
            last = [b.index for b in run[-8:]]
            rr = np.diff(last) / fs
            extra["rr_cv"] = round(float(np.std(rr) / np.mean(rr)), 3) if rr.size >= 2 else None
            hsl, _ = self._hist.span(last[0] - int(round(0.2 * fs)), now)  # room for the first complex and its shift
            base = self._hist.start + hsl.start
            extra["run_similarity"] = run_similarity(self._hist.filt[hsl], [i - base for i in last], usable, fs)
        extra["af"] = bool(self.af.active)
        extra["ksqi"] = [round(q.ksqi, 2) for q in sqi]
        extra["psqi"] = [round(q.psqi, 3) for q in sqi]
        extra["bsqi_leads"] = [round(q.bsqi, 3) for q in sqi]
        return RunEvidence(sqi=sqi, usable=usable, ecg_continuity=self._ecg_continuity(onset, now),
                           pulse=self._pulse_evidence(onset, now), extra=extra)

    def _vt_gate(self, run: list, beat: Beat) -> tuple[bool, dict]:
        onset, now = run[0].index, beat.decided_at
        ev = self._run_evidence(onset, now, run)
        feats = ev.features()
        confirm, reason = judge(feats, self.config.evidence, self.has_pulse)
        if self.evidence_log is not None:
            self.evidence_log.append({"kind": "vt", "run_start": int(onset), "now": int(now), "onset": int(run[-self.config.rhythm.vt_beats:][0].index), **feats})
        out = {"judgement": reason, "checks": ev.to_dict(), "pending": reason == WAITING}
        if reason == WAITING:
            out["waiting_for"] = waiting_for(feats, self.config.evidence, self.has_pulse)
        cls = self.classifier
        if cls.presumed_ventricular():
            # the run's beats match the patient's template: say why they count as ventricular
            out["wide_dominant_beat"] = {"template_width_s": round(float(cls.template_width), 3),
                                         "why": "a wide dominant beat at a fast rate, never seen at 100 bpm or slower: "
                                                "treated as ventricular until shown otherwise"}
        return confirm, out

    def _vf_gate(self, onset: int, stop: int) -> tuple[bool, dict]:
        """Fibrillation has no cardiac output: while at least half the pulses due since the
        fibrillatory stretch began have come (or the pulse is about to be judged), it is artifact."""
        pulse = self._pulse_evidence(onset, stop)
        feats = RunEvidence(pulse=pulse).features()
        pc = feats["pulse_continuity"]
        reason = "confirmed"
        if self.use_pulse and pc is not None and pc >= _VF_PULSE_LOST:
            reason = f"the pulse goes on (continuity {pc:.2f})"
        elif self.use_pulse and pc is None and feats["pulse_pending"]:
            reason = "waiting for the pulse to be due"
        if self.evidence_log is not None:
            self.evidence_log.append({"kind": "vf", "run_start": int(onset), "now": int(stop), "onset": int(onset), "pulse_continuity": pc})
        return reason == "confirmed", {"judgement": reason, "pulse": [p.to_dict() for p in pulse]}

    def _run_end(self, run_start: int, index: int) -> None:
        if self.evidence_log is not None:
            self.evidence_log.append({"kind": "vt_end", "run_start": int(run_start), "now": int(index)})
