"""The pulse as evidence for ECG alarms: pulse detection on PLETH/ABP and "does the pulse go on?".

A ventricular tachycardia changes the circulation at once: the ventricles fill less (shorter
cycles, lost atrial kick, dissociated atria), so the pulse wave shrinks, changes rhythm or is lost.
ECG artifact (motion, a loose electrode) does nothing of the kind: the pulse goes on at the rate
and amplitude it had. So a pulse that continues unchanged through a suspected run is strong
evidence the run is artifact; a pulse that weakens, stops or follows the fast rate is not.

Pulses are the prominent peaks of the low-passed wave (arterial pressure and pleth alike); the
pulse must follow the QRS complexes at a steady transit time before the run to count as evidence
at all, which rejects damped lines, probes off the finger and noise. It runs on
demand over a few seconds of a channel's history (only while a run is being judged), so it costs
nothing between alarms. Channels arrive at their own rate (``AuxChannel.fs``: 125 Hz pleth beside
500 Hz ECG on a Philips monitor, or one rate for a WFDB record); times here are stream seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from edge_ecg.dsp.continuity import walk
from edge_ecg.stream.block import AuxChannel

_MIN_PULSE_S = 0.25  # pulses closer than this (240 /min) are one pulse
_MAX_PULSE_S = 2.0  # a pulse interval longer than this (30 /min) is a pause, not a rhythm
_SETTLE_S = 0.4  # a pulse peak is recognised once the wave has fallen from it again


@dataclass(frozen=True)
class Pulses:
    """Pulses found in a span of one channel: upstroke times (stream seconds) and amplitudes."""

    times: np.ndarray
    amplitudes: np.ndarray
    usable: bool  # the span looks like a pulse wave at all (not flat, not clipped, not empty)


@dataclass(frozen=True)
class PulseEvidence:
    """How the pulse behaved around a suspected run that started at ``onset_s``.

    ``continuity`` is the share of the pulses expected in the run span (at the rate before it)
    that came on time (interval within +-25% of the rhythm before) with an amplitude of at least
    half the amplitude before: 1 = the pulse went on unchanged, 0 = it was lost or changed.
    None when there was no trustworthy pulse before the run (no evidence either way).
    """

    channel: str
    continuity: float | None
    rate_before: float | None  # pulses per minute before the run
    rate_during: float | None
    amplitude_ratio: float | None  # median amplitude during / before
    note: str = ""
    pending: bool = False  # a trustworthy pulse, but too few pulses due since the run began to judge yet
    due: int | None = None  # pulses due in the run so far (what ``continuity`` is a share of)

    def to_dict(self) -> dict:
        r = lambda v, k=3: None if v is None else round(float(v), k)  # noqa: E731
        return {"channel": self.channel, "continuity": r(self.continuity), "rate_before": r(self.rate_before, 1),
                "rate_during": r(self.rate_during, 1), "amplitude_ratio": r(self.amplitude_ratio), "note": self.note,
                "pending": self.pending, "due": self.due}


class PulseHistory:
    """The last ``seconds`` of one pulse channel, by its own sample index (aligned to stream time)."""

    def __init__(self, name: str, fs: float, seconds: float = 30.0) -> None:
        self.name = name
        self.fs = float(fs)
        self.cap = max(int(round(seconds * self.fs)), 16)
        self.buf = np.full(2 * self.cap, np.nan)
        self.n = 0
        self.start = 0  # channel sample index of buf[0]

    @property
    def stop(self) -> int:
        return self.start + self.n

    def append(self, ch: AuxChannel) -> None:
        x = np.asarray(ch.samples, dtype=np.float64).reshape(-1)
        first = ch.start
        if self.n and ch.start != self.stop:
            gap = ch.start - self.stop
            if 0 < gap <= self.cap:  # samples that never arrived: a NaN gap keeps the index contiguous
                x = np.concatenate([np.full(gap, np.nan), x])
                first = self.stop
            else:  # a jump back or a long gap: start over
                self.n = 0
        if self.n == 0:
            self.start = first
        k = x.shape[0]
        if k >= self.cap:
            self.buf[: self.cap] = x[-self.cap :]
            self.start = first + k - self.cap
            self.n = self.cap
            return
        if self.n + k > 2 * self.cap:
            drop = self.n + k - self.cap
            keep = self.n - drop
            self.buf[:keep] = self.buf[drop : self.n]
            self.start += drop
            self.n = keep
        self.buf[self.n : self.n + k] = x
        self.n += k

    def span(self, t0: float, t1: float) -> tuple[np.ndarray, float]:
        """Samples between stream times ``t0`` and ``t1`` (clipped to what is held) and the
        stream time of the first returned sample."""
        a = max(int(np.ceil(t0 * self.fs)), self.start)
        b = min(int(np.floor(t1 * self.fs)), self.stop)
        if b <= a:
            return np.zeros(0), t0
        return self.buf[a - self.start : b - self.start], a / self.fs


def detect_pulses(x: np.ndarray, fs: float, t0: float = 0.0, ref_stop: float | None = None) -> Pulses:
    """Pulse peaks in ``x`` (one channel, any unit) sampled at ``fs``, first sample at ``t0`` s.

    A pulse is a peak of the 8 Hz low-passed wave standing out (prominence) by at least half the
    typical pulse before ``ref_stop`` (the 90th percentile of prominences there), which skips the
    dicrotic notch's second hump; its size is that prominence. (A pulse of less than half the
    size before would not count as going on anyway: ``continuity``'s size rule.)
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if x.size < int(2 * fs) or finite.mean() < 0.8:
        return Pulses(np.zeros(0), np.zeros(0), False)
    if not finite.all():
        idx = np.where(finite, np.arange(x.size), 0)
        np.maximum.accumulate(idx, out=idx)
        x = x[idx]
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo <= 0 or np.mean((x == lo) | (x == hi)) > 0.1:
        return Pulses(np.zeros(0), np.zeros(0), False)  # flat or clipped
    sos = signal.butter(2, min(8.0, 0.45 * fs), fs=fs, output="sos")
    y = signal.sosfiltfilt(sos, x - np.median(x))
    peaks, props = signal.find_peaks(y, distance=max(int(_MIN_PULSE_S * fs), 1), prominence=0.0, wlen=int(1.5 * fs))
    prom = props["prominences"]
    t = t0 + peaks / fs
    ref_sel = t < ref_stop if ref_stop is not None else np.ones(t.size, dtype=bool)
    if ref_sel.sum() < 2:
        return Pulses(np.zeros(0), np.zeros(0), True)
    ref = float(np.percentile(prom[ref_sel], 90))
    keep = prom >= 0.5 * ref
    return Pulses(t[keep], prom[keep], ref > 0)


def pulse_evidence(hist: PulseHistory, beats_s: np.ndarray, onset_s: float, now_s: float, before_s: float = 8.0) -> PulseEvidence:
    """Did the pulse go on through a run that started at ``onset_s``, judged at ``now_s``?

    ``beats_s`` are the QRS times (stream seconds) of the beats before the run, the last one the
    last beat of the rhythm before. The rhythm before is learned over ``before_s`` seconds: the
    pulse must be regular and follow the QRS complexes at a steady transit time (else it is no
    evidence: a damped line, a probe off the finger, noise). The pulse of the last beat before the
    run anchors the walk of ``continuity`` up to ``now_s``.
    """
    x, ts = hist.span(onset_s - before_s, now_s)
    p = detect_pulses(x, hist.fs, ts, ref_stop=onset_s)
    name = hist.name
    if not p.usable:
        return PulseEvidence(name, None, None, None, None, "pulse wave unusable")
    pre = p.times < onset_s
    ib = np.diff(p.times[pre])
    ib = ib[(ib >= _MIN_PULSE_S) & (ib <= _MAX_PULSE_S)]
    if ib.size < 3:
        return PulseEvidence(name, None, None, None, None, "too few pulses before the run")
    period = float(np.median(ib))
    if float(np.median(np.abs(ib - period))) > 0.15 * period:
        return PulseEvidence(name, None, 60.0 / period, None, None, "irregular pulse before the run")
    beats = np.asarray(beats_s, dtype=np.float64)
    beats = beats[(beats >= ts) & (beats < onset_s)]
    # transit time: each beat's first pulse within 0.08-0.9 s; it must be steady
    ptt = []
    for b in beats:
        k = np.searchsorted(p.times, b + 0.08)
        if k < p.times.size and p.times[k] - b <= 0.9:
            ptt.append(p.times[k] - b)
    if len(ptt) < 3:
        return PulseEvidence(name, None, 60.0 / period, None, None, "pulse does not follow the beats before the run")
    ptt_med = float(np.median(ptt))
    if float(np.median(np.abs(np.asarray(ptt) - ptt_med))) > 0.08:
        return PulseEvidence(name, None, 60.0 / period, None, None, "pulse transit time unsteady before the run")
    size_ref = float(np.median(p.amplitudes[pre][-8:]))
    anchor = beats[-1] + ptt_med if beats.size else onset_s
    near = np.nonzero(np.abs(p.times - anchor) <= 0.2)[0]
    if near.size:
        anchor = float(p.times[near[np.argmin(np.abs(p.times[near] - anchor))]])
    after = p.times > anchor
    w = walk(p.times[after], p.amplitudes[after], anchor, now_s, period, size_ref, settle=_SETTLE_S)
    cont = None if w is None else w.share()
    di = np.diff(p.times[after])
    rate_d = 60.0 / float(np.median(di)) if di.size else None
    ratio = float(np.median(p.amplitudes[after]) / size_ref) if after.any() else 0.0
    return PulseEvidence(name, cont, 60.0 / period, rate_d, ratio, "" if cont is not None else "run too short to judge yet",
                         pending=cont is None, due=None if w is None else w.due)
