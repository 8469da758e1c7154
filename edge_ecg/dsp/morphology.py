"""Beat morphology: ventricular or not, from QRS width, template correlation and prematurity.

A ventricular beat starts outside the conduction system, so its QRS is wide and shaped unlike
the patient's dominant (usually supraventricular) beat, and it usually comes early. The
classifier keeps a running template of the dominant beat (a slow average of beats that match
it) and compares each new beat to it. The template only adapts to matching beats, and a
competing cluster may take over as dominant only if it is not wider, so a run of ventricular
tachycardia cannot become "normal" by outnumbering the sinus beats before it. Only when
nothing has matched the template for ``_STALE_BEATS`` beats that keep the dominant rhythm's
rate (not faster, as VT would be) is the template taken as lost and learned anew; without that,
a template learned on artifact labelled every later beat "V" for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


_STALE_BEATS = 30  # this many beats in a row unlike the template, at the old rate: the template is lost


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


class BeatClassifier:
    """Labels each detected beat "N" or "V" (or "Q" while no template exists)."""

    def __init__(self, fs: float, n_leads: int, pre: int) -> None:
        self.fs = float(fs)
        self.pre = int(pre)
        self.a = max(self.pre - int(0.08 * fs), 0)
        self.b = self.pre + int(0.12 * fs)
        self.template: np.ndarray | None = None
        self.template_width = 0.0
        self.n_matched = 0
        self.cand: np.ndarray | None = None
        self.cand_width = 0.0
        self.cand_count = 0
        self.unmatched = 0  # consecutive beats that did not match the template
        self.unmatched_prem: list[float] = []  # ... and their prematurity (the last _STALE_BEATS)

    def classify(self, segment: np.ndarray, slope: np.ndarray, weights: np.ndarray, prematurity: float) -> tuple[str, BeatFeatures]:
        seg = segment[self.a : self.b]
        width = _qrs_width(slope, self.pre, self.fs)
        if self.template is None:
            self.template = seg.copy()
            self.template_width = width
            self.n_matched = 1
            return "Q", BeatFeatures(width, 1.0, prematurity, 1.0)
        c = _corr(seg, self.template)
        corr = float(np.dot(c, weights) / max(weights.sum(), 1e-12))
        amp = float(np.ptp(seg @ weights) / max(np.ptp(self.template @ weights), 1e-9))
        tw = self.template_width
        wide = width > min(1.25 * tw, tw + 0.02)
        premature = prematurity < 0.85
        # biased towards "ventricular": a missed ventricular run costs more than a false one
        ventricular = corr < 0.5 or (corr < 0.8 and (wide or premature)) or (corr < 0.9 and width > tw + 0.04)
        if corr > 0.9 and not wide:
            self.unmatched, self.unmatched_prem = 0, []
            # adapt the dominant template slowly to matching beats
            self.template = 0.9 * self.template + 0.1 * seg
            self.template_width = 0.9 * tw + 0.1 * width
            self.n_matched += 1
            self.cand_count = max(0, self.cand_count - 1)
        else:
            self.unmatched += 1
            self.unmatched_prem = (self.unmatched_prem + [prematurity])[-_STALE_BEATS:]
            self._compete(seg, width)
        label = "V" if ventricular else ("N" if self.n_matched >= 3 else "Q")
        if self.unmatched >= _STALE_BEATS and np.median(self.unmatched_prem[-_STALE_BEATS:]) >= 0.9:
            # nothing has matched the template for long, and the beats come at the dominant
            # rhythm's rate rather than faster: the template is lost (learned on artifact, or the
            # morphology changed), this is no ventricular run; learn a new one. Sustained VT is
            # faster than the rhythm before it, so it keeps its "V" labels.
            self.template, self.cand, self.cand_count = None, None, 0
            self.unmatched, self.unmatched_prem = 0, []
        # a "normal" beat that matches the template only loosely: inside a ventricular run it is
        # more likely a fusion or an oddly shaped ventricular beat than a return to sinus rhythm
        ambiguous = label == "N" and (corr < 0.85 or wide or not 0.6 <= amp <= 1.6)
        return label, BeatFeatures(width, corr, prematurity, amp, ambiguous)

    def _compete(self, seg: np.ndarray, width: float) -> None:
        """A second cluster; it replaces the template if it keeps recurring and is not wider.

        This recovers from a template learned on an ectopic first beat.
        """
        if self.cand is not None and float(np.mean(_corr(seg, self.cand))) > 0.9:
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
