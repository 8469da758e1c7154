"""Streaming multi-lead QRS detector with a bounded decision delay.

Design (Pan-Tompkins / Hamilton family, made causal, block-vectorised and multi-lead):

1. per lead: band-pass (QRS energy band, Butterworth SOS with carried state) -> first difference
   -> square -> moving-window integration (sliding sum with a carried tail). Vectorised per block.
2. leads are fused by normalising each lead's envelope by its own running QRS level (so a small
   lead counts as much as a tall one) and weighting it by its running signal-to-noise ratio and
   lead-off flags (so a noisy or disconnected lead cannot create beats).
3. candidates are envelope peaks that are the maximum within ``peak_window_s`` (200 ms) either
   side, or within ``fast_peak_window_s`` (150 ms) while the last beat was ventricular and fast
   (VT at 250 bpm has 240 ms RR; the analyzer classifies each beat through ``on_beat`` before
   the next decision). A candidate is decided once ``lookahead_s`` of samples after it have
   arrived, so the decision delay after the R peak is bounded by ``locate_s + lookahead_s``
   (<= ``max_delay_s``, 300 ms).
4. the sequential part (a Python loop over candidates only, a few per second) applies adaptive
   signal/noise levels, an RR-based refractory period, a T-wave test on the maximal slope, and a
   time-decaying threshold instead of Pan-Tompkins' searchback (searchback would decide a beat
   seconds late, breaking the delay bound), and a cross-lead noise test: a candidate made by a
   lead that turned noisy while a quiet lead shows no QRS is not a beat (``_noise_only``), nor,
   with no lead noisy, one that half the live leads which saw the last beat show nothing of
   (``_silent_lead``).
5. the R peak (the fiducial of reference annotations) is the largest absolute excursion of a
   broad-band copy of the best lead in the ``locate_s`` before the envelope peak.

Decisions depend only on samples within fixed distances of each candidate, and all filters carry
their state, so the output is identical whatever the block cut (tested with 1, 37 and 5000).
Pacing spikes flagged by the stream blank the detection feature for ``pacer_blank_s``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from edge_ecg.dsp.config import QrsConfig
from edge_ecg.dsp.filters import SosStream


_FLOOR_HISTORY = 60  # whole seconds a lead's usual envelope floor is the median of
_FLOOR_NOISY = 0.05  # an envelope floor above this share of the QRS level may be noise ...
_FLOOR_RISE = 3.0  # ... and is, when it is more than this many times the lead's usual floor
_QUIET_SILENT = 0.05  # a quiet lead showing less than this share of its QRS level saw no QRS
_SILENT = 0.03  # with no lead noisy: a lead that saw the last beat and shows less than this saw none
_ALIVE = 0.25  # ... if its floor, over the last second and just before, is at least this share of its usual one
_ALIVE_S = (0.4, 0.1)  # "just before": from 400 to 100 ms before the candidate


@dataclass(frozen=True)
class Detection:
    """A committed QRS: R-peak index, decision index, and what morphology needs."""

    index: int
    decided_at: int
    amplitude: float  # fused envelope peak (normalised units)
    segment: np.ndarray  # broad-band samples [index - pre, index + post) per lead, (n, leads)
    slope: np.ndarray  # fused squared slope over the same span (n,)
    lead_weights: np.ndarray  # fusion weights at the time (leads,)
    truncated: bool = False  # the segment began before the first sample seen (padded): not a whole beat


class QrsDetector:
    """Causal QRS detection on (n, leads) sample blocks; see the module docstring for the design."""

    def __init__(self, fs: float, n_leads: int, cfg: QrsConfig | None = None) -> None:
        self.cfg = cfg = cfg or QrsConfig()
        self.fs = float(fs)
        self.n_leads = int(n_leads)
        lo, hi = cfg.band_hz
        hi = min(hi, 0.45 * self.fs)
        self._band = SosStream(signal.butter(2, [lo, hi], btype="bandpass", fs=self.fs, output="sos"), n_leads)
        # broad band copy for locating the R peak and for beat morphology, unless the caller
        # passes its own (the analyzer passes its monitor-filtered signal: one filter less)
        broad = np.vstack(
            [
                signal.butter(2, 1.0, btype="highpass", fs=self.fs, output="sos"),
                signal.butter(2, min(35.0, 0.45 * self.fs), btype="lowpass", fs=self.fs, output="sos"),
            ]
        )
        self._broad = SosStream(broad, n_leads)
        self.n_int = max(1, int(round(cfg.integration_s * self.fs)))
        self._mwi_tail = np.zeros((self.n_int, n_leads))  # last n_int squared slopes (moving sum state)
        self._prev_band = None  # last band-passed sample (for the first difference)
        # candidates: maxima within the narrow window; outside fast ventricular rhythm a candidate
        # must also be the maximum within the wide one (T waves and noise next to a QRS)
        self.retro = int(round(cfg.fast_peak_window_s * self.fs))
        self.ahead = min(self.retro, int(round(cfg.lookahead_s * self.fs)))
        self.wide_retro = int(round(cfg.peak_window_s * self.fs))
        self.wide_ahead = min(self.wide_retro, int(round(cfg.lookahead_s * self.fs)))
        self.fast = False  # set through on_beat by the analyzer: last beat ventricular and fast
        self.on_beat = None  # callback(Detection) run as each beat is committed, before the next decision
        self.look = int(round(cfg.lookahead_s * self.fs))
        self.locate = int(round(cfg.locate_s * self.fs))
        # morphology segment before R and after: the classifier's 80 ms before to 120 ms after, with
        # room to align each beat to the template by up to 60 ms either way (morphology.py)
        self.pre = int(round(0.14 * self.fs))
        self.post = int(round(0.18 * self.fs))  # (<= look guaranteed below)
        self.post = min(self.post, self.look)
        self.refractory = int(round(cfg.refractory_s * self.fs))
        self.twave = int(round(cfg.twave_s * self.fs))
        self.learn = int(round(cfg.learn_s * self.fs))
        self.alive_span = (int(round(_ALIVE_S[0] * self.fs)), max(int(round(_ALIVE_S[1] * self.fs)), 1))
        self.keep = max(self.wide_retro, self.retro, self.locate + self.pre, self.alive_span[0]) + self.look + self.n_int + 8
        # buffers: absolute index of buf[0] is self.buf0
        self.buf0 = 0
        self._env = np.zeros((0, n_leads))  # per-lead integrated envelope
        self._dsq = np.zeros((0, n_leads))  # per-lead squared slope
        self._brd = np.zeros((0, n_leads))  # broad-band signal
        self.n_seen = 0  # samples consumed (absolute index of the next sample - start0)
        self.start0: int | None = None
        self.next_t: int | None = None  # next candidate index to evaluate
        self.blank_until = -1
        # adaptive state (normalised fused envelope units)
        self.lead_level = np.zeros(n_leads)  # running QRS envelope peak per lead
        self.lead_noise = np.zeros(n_leads)  # running non-QRS envelope peak per lead
        self.spk = 1.0
        self.npk = 0.1
        self.last_beat: int | None = None
        self.last_t: int | None = None  # envelope peak of the last beat
        self.last_slope = 0.0
        self.rr = deque(maxlen=8)
        self.learned = False
        self.lead_ok = np.ones(n_leads, dtype=bool)  # set by the analyzer (lead-off, flat)
        self.tick = max(int(round(self.fs)), 1)
        self._norm = np.ones(n_leads)
        self._w = np.full(n_leads, 1.0 / n_leads)
        self._fused = np.zeros(0)
        self._second: list[np.ndarray] = []  # envelope rows of the current whole second
        self._floors: deque = deque(maxlen=_FLOOR_HISTORY)  # per lead: median envelope / QRS level, per second
        self.lead_noisy = np.zeros(n_leads, dtype=bool)  # the floor rose well above the lead's usual one
        self._floor_usual: np.ndarray | None = None  # the median of the last minute's floors per lead
        self.last_beat_leads = np.zeros(n_leads)  # each lead's envelope at the last beat / its QRS level

    # -- public -------------------------------------------------------------------------------
    @property
    def rr_mean(self) -> float | None:
        return float(np.mean(self.rr)) if self.rr else None

    def process(self, x: np.ndarray, start: int, pacer: np.ndarray | None = None, broad: np.ndarray | None = None) -> list[Detection]:
        """Feed (n, leads) finite samples starting at absolute index ``start``; return new detections.

        ``broad`` is an optional broad-band filtered copy of ``x`` (same shape) used to locate R
        peaks and cut morphology segments; without it the detector filters its own. ``pacer``
        holds row offsets of flagged pacing spikes.

        The block is cut at every whole second of stream index, where the fusion weights and
        lead normalisation are refreshed: they then change at the same stream positions, and
        between the same decisions, whatever the caller's block size.
        """
        n = x.shape[0]
        if self.start0 is None:
            self.start0 = start
            self.buf0 = start
            self.next_t = start + 1
        out: list[Detection] = []
        a = 0
        while a < n:
            tick = ((start + a) // self.tick + 1) * self.tick
            b = min(n, tick - start)
            p = None
            if pacer is not None and len(pacer):
                p = np.asarray(pacer, dtype=np.int64)
                p = p[(p >= a) & (p < b)] - a
            out += self._process(x[a:b], start + a, p, None if broad is None else broad[a:b])
            if start + b == tick:
                self._close_second()
                if self.learned:
                    self._snapshot()
            a = b
        return out

    def _process(self, x: np.ndarray, start: int, pacer: np.ndarray | None, broad: np.ndarray | None) -> list[Detection]:
        n = x.shape[0]
        if n == 0:
            return []
        band = self._band(x)
        prev = band[:1] if self._prev_band is None else self._prev_band
        d = np.diff(np.concatenate([prev, band]), axis=0)
        self._prev_band = band[-1:]
        dsq = d * d
        # pacing spikes: blank the slope from the flagged sample for pacer_blank_s (carried over)
        if self.blank_until > start:
            dsq[: min(n, self.blank_until - start)] = 0.0
        if pacer is not None and len(pacer):
            blank = int(round(self.cfg.pacer_blank_s * self.fs))
            for p in pacer:
                dsq[int(p) : int(p) + blank] = 0.0
                self.blank_until = max(self.blank_until, start + int(p) + blank)
        # moving-window integration: each output sums the same n_int inputs in the same order
        # whatever the block cut (a cumulative-sum difference would not be bit-identical)
        ext = np.concatenate([self._mwi_tail[1:], dsq])
        env = sliding_window_view(ext, self.n_int, axis=0).sum(axis=-1) / self.n_int
        self._mwi_tail = ext[-self.n_int :]
        self._second.append(env)
        brd = self._broad(x) if broad is None else broad
        self._env = np.concatenate([self._env, env])
        self._dsq = np.concatenate([self._dsq, dsq])
        self._brd = np.concatenate([self._brd, brd])
        if self.learned:
            self._fused = np.concatenate([self._fused, np.sqrt(env / self._norm) @ self._w])
        self.n_seen += n
        end = self.buf0 + self._env.shape[0]
        out: list[Detection] = []
        if not self.learned:
            if end - self.start0 < self.learn:
                return out
            self._learn()
        out = self._scan(end)
        # trim the buffers
        drop = (end - self.keep) - self.buf0
        if drop > 0:
            self._env = self._env[drop:]
            self._dsq = self._dsq[drop:]
            self._brd = self._brd[drop:]
            self._fused = self._fused[drop:]
            self.buf0 += drop
        return out

    # -- internals ----------------------------------------------------------------------------
    def _snapshot(self) -> None:
        """Refresh the fusion normalisation and weights (once a second, at whole seconds)."""
        self._norm = self.lead_level.copy()
        self._w = self._weights()

    def _close_second(self) -> None:
        """Each lead's envelope floor over the second that just ended, relative to its QRS level,
        and whether it rose well above the lead's own usual floor (the last minute's median)."""
        if self._second and self.learned:
            env = np.concatenate(self._second)
            floor = np.median(env, axis=0) / np.maximum(self.lead_level, 1e-12)
            self._floors.append(floor)
            self._floor_usual = np.median(np.asarray(self._floors), axis=0)
            self.lead_noisy = (floor > _FLOOR_NOISY) & (floor > _FLOOR_RISE * np.maximum(self._floor_usual, 0.01))
        self._second = []

    def _noise_only(self, bi: int) -> bool:
        """A candidate that a noisy lead makes while a quiet lead shows nothing is noise.

        Muscle noise on one lead beside a clean one (MIT-BIH 106: V1 for seconds at a time) passes
        the fused threshold as beats: the running noise level follows only the candidates the
        detector rejects, so it cannot catch up with noise whose peaks are accepted. A lead is
        noisy while the median of its envelope over the last whole second is above 5% of its QRS
        level and 3x its own usual median (the last minute's): a clean lead sits at 0.2-2% between
        complexes, 106's noisy V1 at 20-70%. A quiet lead (not noisy, not off, and clearly part of
        the last beat) that shows under 5% of its QRS level within 50 ms of the candidate saw no
        QRS there. Down-weighting the noisy lead in the fusion instead was tried and rejected: a
        ventricular run raises its lead's floor as noise does (CinC 2015 v471l, V: from under 0.5%
        to 17-19% of its QRS level), and the run was lost; its complexes still show in the quiet
        lead (12-20%).

        A single motion artifact (a step on one lead, MIT-BIH 108's V1) is too brief to raise a
        whole second's floor, so no lead is noisy; see ``_silent_lead``.
        """
        if not self.lead_noisy.any():
            return self._silent_lead(bi)
        quiet = ~self.lead_noisy & self.lead_ok & (self.last_beat_leads >= 0.5)  # and saw the last beat
        if not quiet.any():
            return False
        h = max(int(0.05 * self.fs), 1)
        near = self._env[max(bi - h, 0) : bi + h + 1, quiet] / self._norm[quiet]
        return bool(near.max() < _QUIET_SILENT)

    def _silent_lead(self, bi: int) -> bool:
        """With no lead noisy: at least half of the live leads that saw the last beat show under 3%
        of their QRS level within 50 ms of the candidate, and another lead made it.

        A QRS shows in every lead that showed the one before, if smaller in some (a ventricular
        beat of another axis); a step or spike of electrode motion shows in the lead it hit. Not
        free of cost: one of MIT-BIH 109's ventricular beats shows just under 3% in V1 and is lost. *Live* guards the other way round: a lead that just went
        flat (an electrode pulled, before lead-off is flagged) shows nothing either, and taking
        its silence as evidence dropped every beat until the flag came (MIT-BIH 116, 223); a lead
        whose envelope floor, over the last whole second and over 400-100 ms before the
        candidate, is under a quarter of its usual floor is not live. Half, not any: a
        ventricular beat may be isoelectric in one of many leads. Limits from MIT-BIH 108, 109
        and 116 (four variants measured on DS1, docs/dsp-alarms.md), not searched.
        """
        if self._floor_usual is None:
            return False
        usual = self._floor_usual
        a, b = self.alive_span
        before = np.median(self._env[max(bi - a, 0) : max(bi - b, 1)], axis=0) / self._norm
        live = (self._floors[-1] >= _ALIVE * usual) & (before >= _ALIVE * usual)
        saw = self.lead_ok & live & (self.last_beat_leads >= 0.5)
        n = int(saw.sum())
        if n == 0:
            return False
        h = max(int(0.05 * self.fs), 1)
        near = (self._env[max(bi - h, 0) : bi + h + 1] / self._norm).max(axis=0)
        silent = int((near[saw] < _SILENT).sum())
        return silent >= (n + 1) // 2 and silent < int(self.lead_ok.sum())

    def _learn(self) -> None:
        """Initial per-lead levels from the first ``learn_s`` seconds (the learning phase)."""
        seg = self._env[: self.learn]
        peak = np.percentile(seg, 99.5, axis=0)
        med = np.median(seg, axis=0)
        self.lead_level = np.maximum(peak, 1e-12)
        self.lead_noise = np.maximum(med, 1e-12 * np.ones_like(med))
        self._snapshot()
        self._fused = np.sqrt(self._env / self._norm) @ self._w
        fused = self._fused[: self.learn]
        self.spk = float(np.percentile(fused, 99.5))
        self.npk = float(np.median(fused))
        self.learned = True

    def _weights(self) -> np.ndarray:
        snr = self.lead_level / np.maximum(self.lead_noise, 1e-12 * self.lead_level + 1e-30)
        w = np.clip((snr - 1.0) / 8.0, 0.05, 1.0) * self.lead_ok
        if not w.any():
            w = self.lead_ok.astype(float) + 1e-6
        return w / w.sum()

    def _scan(self, end: int) -> list[Detection]:
        out: list[Detection] = []
        last_cand = end - self.look - 1  # last index whose lookahead is complete
        t0 = self.next_t
        if last_cand < t0:
            return out
        a = t0 - self.retro  # may precede the stream start: pad with zeros
        w = self._w
        fused_all = self._fused
        i0 = a - self.buf0
        if i0 < 0:
            seg = np.concatenate([np.zeros(-i0), fused_all])
        else:
            seg = fused_all[i0:]
        win = self.retro + self.ahead + 1
        m = sliding_window_view(seg, win).max(axis=1)  # m[k] = max over [a+k, a+k+win)
        k = np.arange(0, last_cand - t0 + 1)
        ts = t0 + k
        f = seg[ts - a]
        fprev = seg[ts - a - 1]
        cand = np.nonzero((f >= m[k]) & (f > fprev) & (f > 0))[0]
        self.next_t = last_cand + 1
        for c in cand:
            t = int(ts[c])
            det = self._decide(t, float(f[c]), w)
            if det is not None:
                out.append(det)
        return out

    def _decide(self, t: int, amp: float, w: np.ndarray) -> Detection | None:
        cfg = self.cfg
        # time since the last beat, or since the stream began while there is none; and the usual
        # interval, or a resting one while none is known: a start-up transient (an electrode
        # settling, a finger placed on a handheld lead) learned as the QRS level, with at most one
        # beat after it, must not keep the threshold out of the real beats' reach for good
        since = t - (self.start0 if self.last_beat is None else self.last_beat)
        thr = self.npk + cfg.threshold * (self.spk - self.npk)
        known = self.rr_mean
        rr = known or cfg.resting_rr_s * self.fs
        decayed = since > 1.5 * rr
        if decayed:
            # time-decaying threshold: the missed-beat guard of searchback, without its delay
            thr *= max(0.5 ** (1.0 + (since - 1.5 * rr) / rr), 0.2)
        if not self.fast:
            bi0 = t - self.buf0
            lo_w = max(bi0 - self.wide_retro, 0)
            if self._fused[lo_w : bi0 + self.wide_ahead + 1].max() > amp:
                return None
        if self.last_t is not None and t - self.last_t < self.refractory:
            return None  # refractory between envelope peaks: one wide QRS cannot count twice
        bi = t - self.buf0
        lo = max(bi - self.locate, 0)
        slope_now = float(((self._dsq[lo : bi + 1] / self._norm) @ w).max() * self.n_int)
        if amp <= thr:
            self._noise(amp, bi)
            return None
        if self.last_beat is not None and since < self.twave and slope_now < 0.5 * self.last_slope:
            self._noise(amp, bi)  # a T wave: slower than the QRS before it
            return None
        if self._noise_only(bi):
            return None  # no level update: noise levels learned from it would silence the lead for minutes
        # locate the R peak on the lead that carries the most normalised energy
        env_norm = self._env[bi] / self._norm
        lead = int(np.argmax(env_norm * w))
        x = self._brd[lo : bi + 1, lead]
        r_rel = int(np.argmax(np.abs(x)))
        r = self.buf0 + lo + r_rel
        if self.last_beat is not None and r - self.last_beat < self.refractory:
            return None
        # accept
        # levels follow accepted beats, clipped so one artifact cannot lift them out of reach
        # a beat found only under the decayed threshold means the level dropped: adapt faster
        gain = 0.5 if decayed and amp < 0.5 * self.spk else 0.125
        self.spk = gain * min(amp, 2.0 * self.spk) + (1 - gain) * self.spk
        pk = np.clip(self._env[bi], 0.5 * self.lead_level, 2.0 * self.lead_level)
        self.lead_level = 0.875 * self.lead_level + 0.125 * np.maximum(pk, 1e-12)
        if self.last_beat is not None:
            rri = r - self.last_beat
            if known is None:
                if not decayed:  # one that took the decay to end spans a stretch of missed beats
                    self.rr.append(rri)
            elif 0.5 * known < rri < 2.0 * known or len(self.rr) < 2:
                self.rr.append(rri)
        self.last_beat = r
        self.last_t = t
        self.last_beat_leads = env_norm
        self.last_slope = slope_now
        rb = r - self.buf0
        pad = max(0, self.pre - rb)
        seg = self._brd[rb - self.pre + pad : rb + self.post]
        sl = (self._dsq[rb - self.pre + pad : rb + self.post] / self._norm) @ w
        if pad:
            seg = np.concatenate([np.repeat(seg[:1], pad, axis=0), seg])
            sl = np.concatenate([np.zeros(pad), sl])
        det = Detection(index=r, decided_at=t + self.look, amplitude=amp, segment=seg.copy(), slope=sl, lead_weights=w.copy(),
                        truncated=pad > 0)
        if self.on_beat is not None:
            self.on_beat(det)
        return det

    def _noise(self, amp: float, bi: int) -> None:
        self.npk = 0.125 * amp + 0.875 * self.npk
        # clipped at the lead's QRS level like the level itself: one artifact on one lead must not
        # lift its noise above its beats and silence that lead's vote for the rest of the stream
        pk = np.minimum(self._env[bi], self.lead_level)
        self.lead_noise = 0.875 * self.lead_noise + 0.125 * np.maximum(pk, 1e-12)
