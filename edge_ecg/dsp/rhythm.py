"""Classical rhythm alarms with the PhysioNet/CinC Challenge 2015 definitions.

* asystole: no QRS for ``asystole_s`` (4 s)
* extreme bradycardia: heart rate below ``brady_bpm`` (40) for ``brady_beats`` (5) consecutive beats
* extreme tachycardia: heart rate above ``tachy_bpm`` (140) for ``tachy_beats`` (17) consecutive beats
* ventricular tachycardia: ``vt_beats`` (5) or more consecutive ventricular beats at more than
  ``vt_bpm`` (100)
* ventricular fibrillation / flutter: a fibrillatory, flutter or oscillatory waveform for ``vf_s`` (4 s)

"Heart rate for N consecutive beats" is read beat by beat: each of the last N RR intervals gives
an instantaneous rate beyond the limit (for bradycardia the last interval may still be open: 1.5 s
without a beat is below 40 bpm already). Each condition emits an onset when it starts and an
offset when it ends, with its evidence. Physiological onsets are withheld while the window
quality is below ``min_quality`` (noise and lead-off raise technical conditions instead).

The VF test is hand-written because no library ships one: per lead, the signal must be an
oscillation (dominant frequency 2.5-8 Hz holding most of the 1-20 Hz power) without the
isoelectric pauses of organised beats (VF-filter leakage, Kuo & Dillman 1978, below 0.7), and
without discernible QRS complexes: in at least one lead the steepest slope must stay near that
of a sinusoid of the same amplitude and dominant frequency (``slope_ratio``). Fast monomorphic
VT also looks like an oscillation to the spectrum and the VF filter, but its QRS upstrokes are
2.5-6x steeper than a sinusoid's; flutter and fibrillation waves are 1-2.3x (MIT-BIH DS1).
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from edge_ecg.dsp.config import RhythmLimits
from edge_ecg.dsp.types import Beat, RhythmEvent


def vf_features(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``x`` (n, leads): dominant frequency (Hz) in 1-20 Hz, the share of that
    band's power within +-1 Hz of it, and the VF-filter leakage (low = sinusoid-like)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    x = x - x.mean(axis=0)
    n, k = x.shape
    fdom, conc, leak = np.zeros(k), np.zeros(k), np.ones(k)
    if n < 8:
        return fdom, conc, leak
    spec = np.abs(np.fft.rfft(x * np.hanning(n)[:, None], axis=0)) ** 2
    f = np.fft.rfftfreq(n, 1.0 / fs)
    band = (f >= 1.0) & (f <= 20.0)
    fb, sb = f[band], spec[band]
    tot = sb.sum(axis=0)
    fdom = fb[np.argmax(sb, axis=0)] if fb.size else fdom
    near = np.abs(fb[:, None] - fdom[None, :]) <= 1.0
    conc = np.where(tot > 0, (sb * near).sum(axis=0) / np.where(tot > 0, tot, 1.0), 0.0)
    # VF-filter leakage: a sinusoid shifted by half its period cancels itself
    dx = np.abs(np.diff(x, axis=0)).sum(axis=0)
    ax = np.abs(x).sum(axis=0)
    for j in range(k):
        if dx[j] <= 0 or tot[j] <= 0:
            continue
        half = int(round(np.pi * ax[j] / dx[j]))  # half the period of a sinusoid
        if 1 <= half < n:
            a, b = x[half:, j], x[:-half, j]
            leak[j] = np.abs(a + b).sum() / (np.abs(a).sum() + np.abs(b).sum() + 1e-12)
    return fdom, conc, leak


def slope_ratio(x: np.ndarray, fs: float, fdom: np.ndarray) -> np.ndarray:
    """Per column of ``x`` (n, leads): the 99th percentile of |slope| over that of a sinusoid
    with the column's half peak-to-peak amplitude (1st-99th percentile) at ``fdom`` Hz.

    About 1 for a sinusoid, larger the sharper the complexes: the "no discernible QRS" test.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] < 3:
        return np.full(x.shape[1], np.inf)
    lo, hi = np.percentile(x, [1.0, 99.0], axis=0)
    amp = (hi - lo) / 2.0
    slope = np.percentile(np.abs(np.diff(x, axis=0)), 99.0, axis=0) * fs
    ref = 2.0 * np.pi * np.maximum(np.asarray(fdom, dtype=np.float64), 0.5) * amp
    return np.where(ref > 0, slope / np.where(ref > 0, ref, 1.0), np.inf)


class RhythmDetector:
    """Stateful rhythm logic fed with committed beats and stream ticks."""

    def __init__(self, fs: float, limits: RhythmLimits | None = None) -> None:
        self.fs = float(fs)
        self.lim = limits or RhythmLimits()
        self.active: dict[str, RhythmEvent] = {}
        self.last_beat: int | None = None
        self.start: int | None = None
        self.rr_hist: deque = deque(maxlen=max(self.lim.tachy_beats, self.lim.brady_beats, 2))
        self.v_run: list[Beat] = []
        self._vt_waiting: dict | None = None  # the current run's last evidence, while its checks wait
        self.vf_count = 0
        # evidence checks (vt_evidence.py), set by the analyzer: gate(run, beat) -> (confirm, evidence)
        # for a VT candidate, and gate(onset, stop) for VF; None alarms on the beat rule alone
        self.vt_gate: Callable[[list[Beat], Beat], tuple[bool, dict]] | None = None
        self.vf_gate: Callable[[int, int], tuple[bool, dict]] | None = None
        self.on_run_end: Callable[[int, int], None] | None = None  # (first beat of the run, breaking beat)

    # beats ------------------------------------------------------------------------------------
    def on_beat(self, beat: Beat, quality: float) -> list[RhythmEvent]:
        out: list[RhythmEvent] = []
        ok = quality >= self.lim.min_quality
        if "asystole" in self.active:
            out.append(self._off("asystole", beat.index, {"beat": beat.index}))
        hr = 60.0 / beat.rr_s if beat.rr_s else None
        if hr is None:
            self.rr_hist.clear()
        else:
            self.rr_hist.append((beat.index, hr))
        self.last_beat = beat.index
        out += self._rate_rule("extreme_bradycardia", lambda h: h < self.lim.brady_bpm, self.lim.brady_beats, beat, ok, quality)
        out += self._rate_rule("extreme_tachycardia", lambda h: h > self.lim.tachy_bpm, self.lim.tachy_beats, beat, ok, quality)
        # ventricular tachycardia
        out += self._vt_rule(beat, ok, quality)
        return out

    def _vt_rule(self, beat: Beat, ok: bool, quality: float) -> list[RhythmEvent]:
        """``vt_beats`` consecutive ventricular beats faster than ``vt_bpm``.

        A run may carry up to ``vt_ambiguous`` beats labelled normal that match the dominant
        beat only loosely (``Beat.ambiguous``) within any ``vt_beats`` of its beats: a fusion beat
        or an odd ventricular complex inside VT must not hide it, while a confidently normal beat
        ends the run. Missing a true VT costs more than a false alarm (CinC 2015 scores a miss 5x).
        """
        out: list[RhythmEvent] = []
        n = self.lim.vt_beats
        tol = self.lim.vt_ambiguous
        active = "ventricular_tachycardia" in self.active
        if beat.ventricular:
            self.v_run.append(beat)
        elif beat.ambiguous and tol > 0 and self.v_run:
            recent = self.v_run[-(n - 1):] if n > 1 else []
            if sum(not b.ventricular for b in recent) >= tol:
                # one ambiguous beat too many: the run restarts after the latest earlier one
                cut = max(i for i, b in enumerate(self.v_run) if not b.ventricular)
                self.v_run = self.v_run[cut + 1 :]
            self.v_run.append(beat)
        elif beat.ambiguous and tol > 0:
            self.v_run = [beat]
        else:
            if not active and self._vt_waiting is not None:
                # the run ended before the checks could decide: alarmed, as a missed VT costs more
                w = self._vt_waiting
                what = w.pop("waiting_for", "the rhythm underneath")
                out.append(self._on("ventricular_tachycardia", w["beats"][0],
                                    {**w, "judgement": f"the run ended while the checks waited for {what}: "
                                                       f"alarmed, since nothing had shown it to be artifact"}))
                active = True
            if active:
                out.append(self._off("ventricular_tachycardia", beat.index, {"beat": beat.index, "run_beats": len(self.v_run)}))
            if self.v_run and self.on_run_end is not None:
                self.on_run_end(self.v_run[0].index, beat.index)
            self.v_run = []
            self._vt_waiting = None
            return out
        run = self.v_run[-n:]
        n_v = sum(b.ventricular for b in run)
        if len(run) >= n and n_v >= n - tol and not active and ok:
            # the rate of the last ``vt_beats`` beats, from their mean and their median RR (the
            # median so that one missed beat inside the run cannot hide it)
            rr = np.diff([b.index for b in run]) / self.fs
            rate = 60.0 / max(min(float(rr.mean()), float(np.median(rr))), 1e-6)
            if rate > self.lim.vt_bpm:
                ev = {"beats": [b.index for b in run], "rate_bpm": round(rate, 1), "run_beats": len(self.v_run),
                      "ambiguous_beats": [b.index for b in run if not b.ventricular],
                      "widths_s": [b.width_s for b in run], "correlations": [b.correlation for b in run],
                      "quality": round(quality, 3)}
                if self.vt_gate is not None:
                    # judged at every beat while the run lasts: withheld now, maybe confirmed later
                    confirm, extra = self.vt_gate(self.v_run, beat)
                    pending = bool(extra.pop("pending", False))
                    ev.update(extra)
                    if not confirm:
                        self._vt_waiting = ev if pending else None
                        return out
                self._vt_waiting = None
                out.append(self._on("ventricular_tachycardia", run[0].index, ev))
        return out

    def _rate_rule(self, kind: str, cond, n: int, beat: Beat, ok: bool, quality: float) -> list[RhythmEvent]:
        recent = list(self.rr_hist)[-n:]
        met = len(recent) >= n and all(cond(h) for _, h in recent)
        if met and kind not in self.active and ok:
            return [self._on(kind, recent[0][0], {"beats": [i for i, _ in recent], "rates_bpm": [round(h, 1) for _, h in recent], "quality": round(quality, 3)})]
        if kind in self.active and recent and not cond(recent[-1][1]):
            return [self._off(kind, beat.index, {"beat": beat.index, "rate_bpm": round(recent[-1][1], 1)})]
        return []

    # time ------------------------------------------------------------------------------------
    def on_tick(self, decided_to: int, quality: float, leads_off: bool) -> list[RhythmEvent]:
        """Called as the stream advances: all beats with R index < ``decided_to`` are known."""
        if self.start is None:
            self.start = decided_to
        out = self._brady_tick(decided_to, quality, leads_off)
        ref = self.last_beat if self.last_beat is not None else self.start
        limit = int(round(self.lim.asystole_s * self.fs))
        if "asystole" not in self.active and decided_to - ref >= limit:
            if quality >= self.lim.min_quality and not leads_off:
                out.append(self._on("asystole", ref + limit, {"last_beat": self.last_beat, "pause_s": round((decided_to - ref) / self.fs, 2), "quality": round(quality, 3)}))
        return out

    def _brady_tick(self, decided_to: int, quality: float, leads_off: bool) -> list[RhythmEvent]:
        """Extreme bradycardia as soon as the interval still open is known to be slow.

        Once ``60 / brady_bpm`` seconds (1.5 s) have passed since the last beat with no beat
        decided, the interval that beat opened is already below the limit, whatever its end: with
        ``brady_beats - 1`` slow intervals before it the definition is met now, not at the next
        beat. In the serial source's small blocks (40 ms here), MIT-BIH 201's bradycardia (33 bpm)
        is raised 9.35 s after its start instead of 9.70 s.
        """
        n = self.lim.brady_beats
        if "extreme_bradycardia" in self.active or self.last_beat is None or quality < self.lim.min_quality or leads_off:
            return []
        open_s = (decided_to - self.last_beat) / self.fs
        if open_s <= 60.0 / self.lim.brady_bpm:
            return []
        recent = list(self.rr_hist)[-(n - 1):] if n > 1 else []
        if len(recent) < n - 1 or not all(h < self.lim.brady_bpm for _, h in recent):
            return []
        onset = recent[0][0] if recent else self.last_beat
        return [self._on("extreme_bradycardia", onset, {"beats": [i for i, _ in recent], "rates_bpm": [round(h, 1) for _, h in recent],
                                                        "open_interval_s": round(open_s, 2), "quality": round(quality, 3)})]

    def on_vf_window(self, stop: int, is_vf: bool, evidence: dict, window_s: float = 2.0) -> list[RhythmEvent]:
        """One analysis tick (1 s apart, windows of ``window_s``): onset once ``vf_s`` seconds are fibrillatory."""
        need = max(int(round(self.lim.vf_s - window_s)) + 1, 1)
        self.vf_count = self.vf_count + 1 if is_vf else 0
        if self.vf_count >= need and "ventricular_fibrillation" not in self.active:
            onset = stop - int(round(self.lim.vf_s * self.fs))
            if self.vf_gate is not None:
                # judged from where the fibrillatory stretch began (it may have been withheld before)
                began = stop - int(round((self.vf_count - 1 + window_s) * self.fs))
                confirm, extra = self.vf_gate(began, stop)
                evidence = {**evidence, **extra}
                if not confirm:
                    return []
            return [self._on("ventricular_fibrillation", onset, evidence)]
        if not is_vf and "ventricular_fibrillation" in self.active:
            return [self._off("ventricular_fibrillation", stop, evidence)]
        return []

    def _on(self, kind: str, index: int, evidence: dict) -> RhythmEvent:
        ev = RhythmEvent(kind, "onset", int(index), evidence)
        self.active[kind] = ev
        return ev

    def _off(self, kind: str, index: int, evidence: dict) -> RhythmEvent:
        self.active.pop(kind, None)
        return RhythmEvent(kind, "offset", int(index), evidence)
