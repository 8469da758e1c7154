"""Beat morphology: ventricular or not, from QRS width, template correlation and prematurity.

A ventricular beat starts outside the conduction system, so its QRS is wide and shaped unlike
the patient's dominant (usually supraventricular) beat, and it usually comes early (except in
atrial fibrillation, where every short interval looks early: while AF is on, the analyzer passes
each beat as on time, and its shape alone decides). The
classifier keeps a running template of the dominant beat (a slow average of beats that match
it) and compares each new beat to it. The template only adapts to matching beats, and a
competing cluster may take over as dominant only if it is not wider, so a run of ventricular
tachycardia cannot become "normal" by outnumbering the sinus beats before it. Only when
nothing has matched the template for ``_STALE_BEATS`` beats that keep the dominant rhythm's
rate (not faster, as VT would be) is the template taken as lost and learned anew; without that,
a template learned on artifact labelled every later beat "V" for minutes.

A template is learned from the first ``_LEARN_BEATS`` whole beats, not the first one: the beat
most of them match, the narrower on a tie. Learned from the first beat alone, a monitor switched
on at a PVC took the PVC as the patient's normal beat; the normal beats that followed were all
"V", and in patients with frequent PVCs (bigeminy: every other beat matched the PVC template) the
normal cluster could never take over. Over 120 one-minute starts just before a PVC in 12 MIT-BIH
records, the VT onsets that the same minute streamed after a minute of warm-up does not raise fell
from 42 to 24 (docs/dsp-alarms.md).

A template learned on a VT that was already running at switch-on matches every later VT beat, so
a wide dominant beat at a fast rate is ventricular until the dominant rhythm has run at a normal
rate once (``BeatClassifier.presumed_ventricular``), or a clinician says it is the patient's own
(``BeatClassifier.relearn``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


_MATCH = 0.9  # template correlation above which a beat that is not wide is the dominant beat
_STALE_BEATS = 30  # this many beats in a row unlike the template, at the old rate: the template is lost
_LEARN_BEATS = 6  # whole beats a template is learned from (even: bigeminy ties, and the narrower wins)
_WIDE_S = 0.12  # a dominant beat at least this wide (this module's width estimate) is a wide QRS
_CONDUCTED_RR_S = 0.6  # dominant beats at this RR or longer (100 bpm or slower) show the rhythm is conducted


@dataclass(frozen=True)
class BeatFeatures:
    width_s: float
    correlation: float  # against the dominant template (weighted over leads); 1.0 while learning
    prematurity: float  # RR / running mean RR (1.0 = on time)
    amplitude_ratio: float  # peak-to-peak vs the template's
    ambiguous: bool = False  # not ventricular, but not a confident match of the dominant beat either


def _qrs_width(slope: np.ndarray, pre: int, fs: float) -> float:
    """Span around the R peak where the fused squared slope stays above 10% of its maximum."""
    lo = max(pre - int(0.08 * fs), 0)
    hi = min(pre + int(0.10 * fs), len(slope))
    s = slope[lo:hi]
    if s.size == 0 or s.max() <= 0:
        return 0.0
    above = s > 0.1 * s.max()
    idx = np.nonzero(above)[0]
    return float(idx[-1] - idx[0] + 1) / fs


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation per column of two (n, leads) arrays."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    return np.where(den > 0, (a * b).sum(axis=0) / np.where(den > 0, den, 1.0), 0.0)


def lagged_corr(windows: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Pearson correlation of each lagged window (lags, leads, m) with ``ref`` (m, leads): (lags, leads)."""
    wc = windows - windows.mean(axis=2, keepdims=True)
    rc = (ref - ref.mean(axis=0)).T
    num = np.einsum("klm,lm->kl", wc, rc)
    den = np.sqrt(np.einsum("klm,klm->kl", wc, wc) * (rc * rc).sum(axis=1)[None, :])
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


class BeatClassifier:
    """Labels each detected beat "N" or "V" (or "Q" while no template exists).

    Each beat is compared with the template at the lag (up to ``MAX_LAG_S`` either way) where they
    correlate best. The detector's R peak is the largest deflection of the leading lead, and on a
    biphasic QRS (R and S of similar size, or a lead change) that point jumps between the R and the
    S wave from beat to beat: compared without alignment, such a patient's normal beats correlate
    negatively with their own template and half of them were labelled ventricular (MIT-BIH 112,
    118, 220 and 230: 40-60% of normal beats).
    """

    MAX_LAG_S = 0.06  # an R-to-S jump is 30-60 ms

    def __init__(self, fs: float, n_leads: int, pre: int, seg_len: int | None = None) -> None:
        self.fs = float(fs)
        self.pre = int(pre)
        self.a = max(self.pre - int(0.08 * fs), 0)
        self.b = self.pre + int(0.12 * fs)
        # lags the segment allows: [a - lag, b + lag) must lie inside it
        room = self.a if seg_len is None else min(self.a, int(seg_len) - self.b)
        self.max_lag = max(min(int(round(self.MAX_LAG_S * fs)), room), 0)
        self.template: np.ndarray | None = None
        self.template_width = 0.0
        self.n_matched = 0
        self.cand: np.ndarray | None = None
        self.cand_width = 0.0
        self.cand_count = 0
        self.unmatched = 0  # consecutive beats that did not match the template
        self.unmatched_prem: list[float] = []  # ... and their prematurity (the last _STALE_BEATS)
        self.last_label = "Q"
        self._learning: list[tuple[np.ndarray, float]] = []  # (segment, width) of beats while no template
        self._dominant_rr: deque = deque(maxlen=3)  # RR of the last matching beats
        self.normal_rate_seen = False  # the dominant rhythm has run at 100 bpm or slower

    def _aligned(self, segment: np.ndarray, ref: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float]:
        """The part of ``segment`` that best matches ``ref`` within +-max_lag, and that correlation
        (weighted over leads). Lag 0 wins ties, so an aligned patient is judged as before."""
        lag = min(self.max_lag, self.a, segment.shape[0] - self.b)
        m = self.b - self.a
        if lag <= 0:
            seg = segment[self.a : self.b]
            return seg, float(np.dot(_corr(seg, ref), weights) / max(weights.sum(), 1e-12))
        part = segment[self.a - lag : self.b + lag]
        c = lagged_corr(sliding_window_view(part, m, axis=0), ref)  # (2 lag + 1, leads)
        cw = c @ weights / max(float(weights.sum()), 1e-12)
        k = int(np.argmax(cw))
        if cw[k] <= cw[lag] + 1e-9:
            k = lag
        return part[k : k + m], float(cw[k])

    def classify(self, segment: np.ndarray, slope: np.ndarray, weights: np.ndarray, prematurity: float,
                 whole: bool = True, rr_s: float | None = None) -> tuple[str, BeatFeatures]:
        """``whole`` is False for a beat cut off by the start of the stream: it is never one of the
        beats a template is learned from. A monitor switched on mid-beat otherwise learned a
        half-beat of padding, which no later beat matches; in MIT-BIH 223 (frequent PVCs) that held
        for the whole run and the VT that followed was labelled normal.

        ``rr_s`` (the interval to the previous beat) lets a wide dominant beat be judged: see
        ``presumed_ventricular``."""
        width = _qrs_width(slope, self.pre, self.fs)
        if self.template is None:
            if whole:
                self._learning.append((segment.copy(), width))
            if len(self._learning) < _LEARN_BEATS:
                return "Q", BeatFeatures(width, 1.0, prematurity, 1.0)
            self._learn(weights)
        seg, corr = self._aligned(segment, self.template, weights)
        amp = float(np.ptp(seg @ weights) / max(np.ptp(self.template @ weights), 1e-9))
        tw = self.template_width
        wide = width > min(1.25 * tw, tw + 0.02)
        premature = prematurity < 0.85
        matched = corr > _MATCH and not wide  # a confident match of the dominant beat
        # biased towards "ventricular": a missed ventricular run costs more than a false one. Right
        # after a ventricular beat, a wide early beat that is no confident match continues the run
        # (VT whose complexes alternate between two shapes, one close to the template)
        ventricular = (corr < 0.5 or (corr < 0.8 and (wide or premature)) or (corr < _MATCH and width > tw + 0.04)
                       or (self.last_label == "V" and not matched and wide and premature))
        if matched:
            self.unmatched, self.unmatched_prem = 0, []
            # adapt the dominant template slowly to matching beats
            self.template = 0.9 * self.template + 0.1 * seg
            self.template_width = 0.9 * tw + 0.1 * width
            self.n_matched += 1
            self.cand_count = max(0, self.cand_count - 1)
        else:
            self.unmatched += 1
            self.unmatched_prem = (self.unmatched_prem + [prematurity])[-_STALE_BEATS:]
            self._compete(segment, weights, width)
        if matched and rr_s is not None:
            self._dominant_rr.append(rr_s)
            if len(self._dominant_rr) == self._dominant_rr.maxlen and np.median(self._dominant_rr) >= _CONDUCTED_RR_S:
                self.normal_rate_seen = True
        ventricular = ventricular or (matched and self.presumed_ventricular())
        label = "V" if ventricular else ("N" if self.n_matched >= 3 else "Q")
        self.last_label = label
        if self.unmatched >= _STALE_BEATS and np.median(self.unmatched_prem[-_STALE_BEATS:]) >= 0.9:
            # nothing has matched the template for long, and the beats come at the dominant
            # rhythm's rate rather than faster: the template is lost (learned on artifact, or the
            # morphology changed), this is no ventricular run; learn a new one. Sustained VT is
            # faster than the rhythm before it, so it keeps its "V" labels.
            self.template, self.cand, self.cand_count = None, None, 0
            self.unmatched, self.unmatched_prem = 0, []
            self._learning = []
        # a "normal" beat that is no confident match of the template: inside a ventricular run it
        # is more likely a fusion or an oddly shaped ventricular beat than a return to sinus rhythm
        ambiguous = label == "N" and (not matched or not 0.6 <= amp <= 1.6)
        return label, BeatFeatures(width, corr, prematurity, amp, ambiguous)

    def presumed_ventricular(self) -> bool:
        """A wide dominant beat, fast (the median of the last three dominant intervals, so that one
        missed beat does not break the run), while the dominant rhythm has never run at a normal rate.

        A monitor switched on during ventricular tachycardia learns the VT beat as the patient's
        own, and no beat is then unlike the template: the IntelliVue VT capture raised nothing.
        A wide-complex tachycardia is treated as ventricular until shown otherwise (the bedside
        rule: its origin cannot be told from one lead), and what shows otherwise here is the same
        beat at 100 bpm or slower, as a bundle-branch block conducts it. Once the dominant rhythm
        has run at a normal rate, the rule is off for the rest of the stream: a patient with a
        bundle-branch block whose rate rises later is not alarmed.
        """
        return (not self.normal_rate_seen and self.template_width >= _WIDE_S
                and bool(self._dominant_rr) and float(np.median(self._dominant_rr)) < _CONDUCTED_RR_S)

    def relearn(self) -> None:
        """Forget the dominant beat and learn it from the next whole beats.

        The operator's "the rhythm now is this patient's own" (``edge-ecg alarms relearn``): the
        beat learned next is the patient's conducted beat, so a wide one is a bundle-branch block,
        not a ventricular rhythm (``normal_rate_seen``). Done during VT, it makes the VT normal:
        the daemon's docs say so.
        """
        self.template, self.cand, self.cand_count = None, None, 0
        self.unmatched, self.unmatched_prem = 0, []
        self._learning = []
        self.n_matched = 0
        self.last_label = "Q"
        self._dominant_rr.clear()
        self.normal_rate_seen = True

    def _learn(self, weights: np.ndarray) -> None:
        """The template: the learning beat the most others match (aligned), the narrower on a tie."""
        segs = [g for g, _ in self._learning]
        widths = [w for _, w in self._learning]
        cores = [g[self.a : self.b] for g in segs]
        matches = [sum(self._aligned(g, core, weights)[1] > _MATCH for g in segs) for core in cores]
        best = max(range(len(segs)), key=lambda i: (matches[i], -widths[i]))
        self.template = cores[best].copy()
        self.template_width = widths[best]
        self.n_matched = matches[best]
        self._learning = []

    def _compete(self, segment: np.ndarray, weights: np.ndarray, width: float) -> None:
        """A second cluster; it replaces the template if it keeps recurring and is not wider.

        This follows a change of the dominant morphology, and recovers from a template the learning
        beats chose wrongly (ectopic beats in the majority of them).
        """
        seg, c = (segment[self.a : self.b], 0.0) if self.cand is None else self._aligned(segment, self.cand, weights)
        if self.cand is not None and c > _MATCH:
            self.cand = 0.8 * self.cand + 0.2 * seg
            self.cand_width = 0.8 * self.cand_width + 0.2 * width
            self.cand_count += 1
        else:
            self.cand = seg.copy()
            self.cand_width = width
            self.cand_count = 1
        if self.cand_count >= 8 and self.cand_width <= self.template_width * 1.05:
            self.template, self.template_width = self.cand, self.cand_width
            self.n_matched = self.cand_count
            self.cand, self.cand_count = None, 0
