"""Per-lead signal-quality indices for judging an alarm: can this lead be believed right now?

The quality module (``quality.py``) flags what an electrode does (off, flat, clipped, drifting);
these indices judge whether a lead's *beats* can be trusted over a few seconds, the way the
PhysioNet/CinC 2015 entries did (Li, Mark & Clifford, Physiol Meas 2008; Behar et al., IEEE TMI
2013):

* ``bsqi``: agreement of two QRS detectors that work differently, on that lead alone: an energy
  detector (band-passed squared slope, Pan-Tompkins style) and a curve-length detector (Zong's
  length transform, as in ``wqrs``). On clean ECG both find the same complexes; artifact drives
  them apart (one follows slopes, the other the length of the curve). F1 of their match.
* ``ksqi``: kurtosis of the lead: sharp QRS complexes on a quiet baseline are heavy-tailed (> 5);
  Gaussian noise is 3, sinusoidal artifact below 2.
* ``psqi``: share of 5-15 Hz (QRS) power in 5-40 Hz: muscle and motion noise move power out.

All run offline over a short span of the analyzer's history, only while an alarm is being
judged, so they cost nothing between alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

_REFRACTORY_S = 0.25
_MATCH_S = 0.15


@dataclass(frozen=True)
class LeadSqi:
    lead: str
    bsqi: float  # 0..1, agreement of the two detectors
    ksqi: float  # kurtosis (Pearson, normal = 3)
    psqi: float  # 5-15 Hz share of 5-40 Hz power
    beats_energy: int
    beats_length: int

    def to_dict(self) -> dict:
        return {"lead": self.lead, "bsqi": round(self.bsqi, 3), "ksqi": round(self.ksqi, 2), "psqi": round(self.psqi, 3),
                "beats": [self.beats_energy, self.beats_length]}


def _peaks(feature: np.ndarray, fs: float, frac: float) -> np.ndarray:
    """Peaks above ``frac`` of the feature's robust maximum, at least ``_REFRACTORY_S`` apart."""
    if feature.size < 3:
        return np.zeros(0, dtype=np.int64)
    top = float(np.percentile(feature, 99.0))
    if top <= 0:
        return np.zeros(0, dtype=np.int64)
    p, _ = signal.find_peaks(feature, height=frac * top, distance=max(int(_REFRACTORY_S * fs), 1))
    return p


def energy_detector(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS sample positions by squared slope of the 5-25 Hz band, integrated over 100 ms."""
    b = signal.butter(2, [5.0, min(25.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    y = signal.sosfiltfilt(b, x)
    e = np.diff(y, prepend=y[0]) ** 2
    w = max(int(0.1 * fs), 1)
    e = np.convolve(e, np.ones(w) / w, mode="same")
    return _peaks(e, fs, 0.3)


def length_detector(x: np.ndarray, fs: float) -> np.ndarray:
    """QRS sample positions by Zong's curve-length transform of the 15 Hz low-passed lead (130 ms)."""
    b = signal.butter(2, min(15.0, 0.45 * fs), fs=fs, output="sos")
    y = signal.sosfiltfilt(b, x)
    # length of the curve in (time, amplitude) with amplitude scaled by its own spread
    dy = np.diff(y, prepend=y[0]) / (np.std(y) + 1e-9) * fs / 250.0
    d = np.sqrt(1.0 / (fs / 250.0) ** 2 + dy * dy)
    w = max(int(0.13 * fs), 1)
    lt = np.convolve(d, np.ones(w), mode="same")
    lt = lt - np.median(lt)
    return _peaks(lt, fs, 0.35)


def match_f1(a: np.ndarray, b: np.ndarray, tol: int) -> float:
    """F1 of two sorted position lists paired one-to-one within ``tol`` samples (1 when both empty)."""
    if a.size == 0 and b.size == 0:
        return 1.0
    if a.size == 0 or b.size == 0:
        return 0.0
    i = j = m = 0
    while i < a.size and j < b.size:
        d = int(a[i]) - int(b[j])
        if abs(d) <= tol:
            m += 1
            i += 1
            j += 1
        elif d < 0:
            i += 1
        else:
            j += 1
    return 2.0 * m / (a.size + b.size)


def lead_sqi(lead: str, x: np.ndarray, fs: float) -> LeadSqi:
    """The three indices of one lead over the span ``x`` (monitor-filtered, microvolts)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < int(1.0 * fs) or not np.isfinite(x).all() or np.ptp(x) <= 0:
        return LeadSqi(lead, 0.0, 0.0, 0.0, 0, 0)
    pe, pl = energy_detector(x, fs), length_detector(x, fs)
    b = match_f1(pe, pl, int(round(_MATCH_S * fs)))
    xc = x - x.mean()
    var = float(np.mean(xc * xc))
    k = float(np.mean(xc**4) / (var * var)) if var > 0 else 0.0
    f, pxx = signal.periodogram(xc, fs=fs)
    band = pxx[(f >= 5) & (f <= 40)].sum()
    q = float(pxx[(f >= 5) & (f <= 15)].sum() / band) if band > 0 else 0.0
    return LeadSqi(lead, float(b), k, q, int(pe.size), int(pl.size))


def rail_fraction(raw: np.ndarray) -> np.ndarray:
    """Per column of ``raw`` (n, leads): share of samples stuck on the span's extreme value in runs
    of at least three equal samples (an amplifier or ADC rail: a clipped cable tug)."""
    raw = np.asarray(raw)
    if raw.shape[0] < 4:
        return np.zeros(raw.shape[1] if raw.ndim == 2 else 1)
    hi, lo = raw.max(axis=0), raw.min(axis=0)
    at = ((raw == hi) | (raw == lo)) & (hi > lo)
    stuck = at[2:] & at[1:-1] & at[:-2] & (raw[2:] == raw[1:-1]) & (raw[1:-1] == raw[:-2])
    return stuck.mean(axis=0)
