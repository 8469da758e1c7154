"""Atrial fibrillation, classically: an irregular, unpredictable ventricular response without
consistent P waves.

The evidence is read at every beat over a window of the last ``AfConfig.window_beats`` (60)
beats, from four features of the RR intervals between supraventricular beats and of the atrial
window before each QRS:

* ``ln_mad``: irregularity, ln(0.01 + median |successive RR difference| / median RR). A median,
  not an RMS, so that AF (irregular throughout) differs from a short burst of ectopy or of
  misdetections inside an otherwise regular window;
* ``cosen``: unpredictability, the coefficient of sample entropy (Lake & Moorman 2011, m = 1).
  Bigeminy and trigeminy change the RR a lot but repeat, so their entropy is low; AF's is high;
* ``p_coherence``: consistency of the atrial wave before each QRS (``P_WINDOW_S``). The segments
  are averaged over the window's beats: in sinus rhythm, with ectopic atrial beats or flutter the
  same wave precedes every QRS and survives the average, in AF the fibrillatory waves cancel. The
  value is the share of the segments' energy the average keeps, corrected for the 1/n a random
  segment keeps; the best lead counts ("where the lead allows": a lead without visible P waves
  cannot vouch for sinus rhythm, and the RR features then decide alone);
* ``heart_rate``: 60 / median RR (AF conducts fast unless rate-controlled; a weak feature).

**Ectopy rejection**: every RR interval that ends on a beat labelled ventricular by the
morphology classifier, or follows one (the coupling interval and the compensatory pause), is
dropped before any RR feature, and ventricular beats give no P segment. Supraventricular
ectopics are not labelled; the median-based irregularity and the entropy are what keep isolated
APCs and patterned ectopy from looking like AF.

**Decision**: a logistic model of the four features (``AfModel``: four weights, a bias and the
standardisation), fitted by record-grouped cross-validation in ``edge_ecg.eval.af_eval``, gives a
probability ``p``; a beat is "AF" when p reaches ``threshold`` and the window's entropy is at
least ``gate_cosen`` (the 10th percentile of the training AF records': AF is never predictable,
whatever the other features say). Two operating points share that evidence:

* a recording (a 9-61 s strip) is AF when ``p >= threshold`` (and the gate) for most of its beats;
* the bedside condition ``atrial_fibrillation`` is raised once ``p >= alarm_threshold`` (and the
  gate) at every beat for ``onset_s`` (30 s) and cleared once that has failed at every beat for
  ``offset_s`` (30 s). ``alarm_threshold`` is higher because a monitor watches for hours: it is
  chosen on long annotated records by leave-one-record-out cross-validation.

A decision without ``min_intervals`` clean intervals, or below ``min_quality``, is "unknown" and
restarts either run, so the condition holds its state while the rhythm cannot be read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ecg.dsp.types import Beat, RhythmEvent
from edge_ecg.errors import ConfigError, InputError

KIND = "atrial_fibrillation"
FEATURES = ("ln_mad", "cosen", "p_coherence", "heart_rate")
RR_FEATURES = 2  # the first two need clean intervals; without them there is no decision
P_FEATURE = 2  # the one feature that may be unknown (imputed) in a decided window
# the atrial wave before a QRS: P onset is 120-200 ms (PR) before QRS onset, itself ~40 ms before R
P_WINDOW_S = (0.32, 0.08)
_MIN_R_S = 0.03  # sample-entropy tolerance floor (Lake & Moorman's smallest useful r)
_MIN_MATCHES = 5  # sample entropy needs this many (m+1)-matches to be estimated


@dataclass(frozen=True)
class AfModel:
    """Logistic AF evidence: p = 1 / (1 + exp(-(bias + sum(w_i * (x_i - mean_i) / scale_i)))).

    The shipped values (``af_model.json``) are the ones the cross-validated procedure selects on
    all shared records; docs/dsp-alarms.md gives that procedure's out-of-fold figures.
    """

    weights: tuple[float, ...] = (1.0, 1.0, -1.0, 0.5)
    bias: float = 0.0
    mean: tuple[float, ...] = (-2.5, -1.5, 0.4, 80.0)
    scale: tuple[float, ...] = (0.8, 0.6, 0.3, 20.0)
    threshold: float = 0.5  # per-recording operating point
    gate_cosen: float = -1.9  # a window this predictable is never AF
    alarm_threshold: float = 0.9  # bedside operating point (30 s persistence)
    provenance: dict = field(default_factory=dict, compare=False)

    def probability(self, x: np.ndarray) -> np.ndarray:
        """AF probability per row of ``x`` (n, len(FEATURES)), unknown P coherence imputed."""
        x = impute(np.atleast_2d(np.asarray(x, dtype=np.float64)), self)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        s = self.bias + z @ np.asarray(self.weights, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(s, -50, 50)))

    def evidence(self, x: np.ndarray) -> np.ndarray:
        """``probability``, but 0 where the window is more predictable than ``gate_cosen``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return np.where(x[:, 1] >= self.gate_cosen, self.probability(x), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "weights": [float(v) for v in self.weights], "bias": float(self.bias),
                "mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale],
                "threshold": float(self.threshold), "gate_cosen": float(self.gate_cosen),
                "alarm_threshold": float(self.alarm_threshold)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AfModel":
        if list(d.get("features", FEATURES)) != list(FEATURES):
            raise ValueError(f"features {d.get('features')} are not this detector's {list(FEATURES)}")
        n = len(FEATURES)
        vec = {k: tuple(float(v) for v in d[k]) for k in ("weights", "mean", "scale")}
        if any(len(v) != n for v in vec.values()) or min(vec["scale"]) <= 0:
            raise ValueError(f"weights, mean and scale need {n} values each (scale > 0)")
        return cls(**vec, bias=float(d["bias"]), threshold=float(d["threshold"]), gate_cosen=float(d["gate_cosen"]),
                   alarm_threshold=float(d.get("alarm_threshold", d["threshold"])))


MODEL_FILE = Path(__file__).with_name("af_model.json")


def load_model(path: str | Path | None = None) -> AfModel:
    """The AF model shipped beside this module (``af_model.json``, written by ``edge-ecg eval af
    --write-model``), or the one at ``path``; an unreadable file is an ``InputError`` naming it."""
    path = Path(path) if path is not None else MODEL_FILE
    try:
        d = json.loads(path.read_text())
        m = AfModel.from_dict(d["model"] if "model" in d else d)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a readable AF model: {exc}") from exc
    return AfModel(**{**m.__dict__, "provenance": {k: v for k, v in d.items() if k != "model"}})


@dataclass(frozen=True)
class AfConfig:
    """The AF condition's settings (the daemon config's ``[dsp.af]`` table)."""

    enabled: bool = True
    window_beats: int = 60  # beats the evidence looks back over (30-60 in the literature)
    min_intervals: int = 12  # clean RR intervals a decision needs (COSEn works from 12 beats)
    onset_s: float = 30.0  # evidence positive at every beat this long: the condition is raised
    offset_s: float = 30.0  # evidence negative at every beat this long: the condition is cleared
    min_quality: float = 0.3  # below this window score a beat's decision is "unknown"
    model_file: str | None = None  # another AfModel JSON; None = the shipped af_model.json

    def validate(self, where: str = "dsp.af") -> None:
        if int(self.window_beats) < 8 or not 4 <= int(self.min_intervals) <= int(self.window_beats):
            raise ConfigError(f"{where}.min_intervals", "need 4 <= min_intervals <= window_beats and window_beats >= 8")
        for name in ("onset_s", "offset_s"):
            if not float(getattr(self, name)) >= 0:
                raise ConfigError(f"{where}.{name}", "must be >= 0 seconds")


# -- features ------------------------------------------------------------------------------------
def clean_intervals(rr: np.ndarray, ventricular: np.ndarray) -> np.ndarray:
    """Mask of the RR intervals kept for AF: known, not ending on a ventricular beat and not
    following one (a PVC's coupling interval and its compensatory pause are both dropped)."""
    rr = np.asarray(rr, dtype=np.float64)
    v = np.asarray(ventricular, dtype=bool)
    after = np.zeros_like(v)
    after[1:] = v[:-1]
    return np.isfinite(rr) & (rr > 0) & ~v & ~after


def ln_mad(rr: np.ndarray, keep: np.ndarray) -> float:
    """ln(0.01 + median |difference of consecutive kept intervals| / median kept interval)."""
    both = keep[1:] & keep[:-1]
    if both.sum() < 2:
        return float("nan")
    d = np.abs(np.diff(rr))[both]
    return float(math.log(0.01 + np.median(d) / np.median(rr[keep])))


def cosen(x: np.ndarray) -> float:
    """Coefficient of sample entropy (Lake & Moorman 2011) of an RR series in seconds, m = 1.

    SampEn = ln(B / A) with B the pairs of single intervals within r of each other and A the
    pairs whose next intervals match too; r is the smallest tolerance >= 30 ms that gives
    ``_MIN_MATCHES`` (m+1)-matches, as Lake & Moorman let r grow until the estimate is
    confident. COSEn = SampEn + ln(2r) - ln(mean RR): a density, comparable across r and rates.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 4:
        return float("nan")
    # every pair twice (the full matrices, diagonal excluded): counts are doubled, ratios are not
    d1 = np.abs(x[:-1, None] - x[None, :-1])  # templates of length 1 (the first n-1 values)
    d2 = np.maximum(d1, np.abs(x[1:, None] - x[None, 1:]))  # ... and their continuation
    np.fill_diagonal(d1, np.inf)
    np.fill_diagonal(d2, np.inf)
    pairs = (n - 1) * (n - 2) // 2
    k = min(_MIN_MATCHES, pairs) - 1
    r = max(_MIN_R_S, float(np.partition(d2.ravel(), 2 * k)[2 * k]))
    a = int(np.count_nonzero(d2 <= r))
    b = int(np.count_nonzero(d1 <= r))
    if a == 0 or b == 0:
        return float("nan")
    return float(math.log(b / a) + math.log(2 * r) - math.log(float(x.mean())))


def p_coherence(segments: np.ndarray) -> float:
    """Share of the P-window segments' energy that their average keeps, bias-corrected.

    ``segments`` is (n_beats, n_samples, n_leads); each segment is mean-removed. Per lead,
    c = n * |mean|^2 / mean(|x|^2) is about 1 for n random segments and n for identical ones;
    (c - 1) / (n - 1) is then 0 .. 1. The best lead's value is returned.
    """
    s = np.asarray(segments, dtype=np.float64)
    if s.ndim == 2:
        s = s[:, :, None]
    n, length = s.shape[0], s.shape[1]
    if n < 3:
        return float("nan")
    m = s.mean(axis=1)  # (n, leads): each segment's own baseline
    energy = np.einsum("ilk,ilk->k", s, s) - length * np.einsum("ik,ik->k", m, m)  # sum of centred energies
    total = s.sum(axis=0) - m.sum(axis=0)  # sum of centred segments (n_samples, leads)
    kept = np.einsum("lk,lk->k", total, total)
    ok = energy > 1e-12
    if not ok.any():
        return float("nan")
    c = kept[ok] / energy[ok]  # = n |mean|^2 / mean energy
    return float(np.max((c - 1.0) / (n - 1.0)))


def window_features(rr: np.ndarray, ventricular: np.ndarray, segments: np.ndarray | None,
                    min_intervals: int = 12) -> np.ndarray:
    """The ``FEATURES`` over one window of beats (oldest first); NaN where not computable.

    ``rr`` is each beat's preceding interval in seconds (NaN unknown), ``ventricular`` its label,
    ``segments`` the P-window samples of the window's beats (n_beats, n_samples, n_leads), with
    NaN rows where unavailable.
    """
    rr = np.asarray(rr, dtype=np.float64)
    v = np.asarray(ventricular, dtype=bool)
    keep = clean_intervals(rr, v)
    out = np.full(len(FEATURES), np.nan)
    if keep.sum() < min_intervals:
        return out
    out[0] = ln_mad(rr, keep)
    out[1] = cosen(rr[keep])
    out[3] = 60.0 / float(np.median(rr[keep]))
    if segments is not None:
        seg = np.asarray(segments)
        ok = ~v & np.isfinite(seg).all(axis=tuple(range(1, seg.ndim)))
        out[2] = p_coherence(seg[ok]) if ok.sum() >= 3 else np.nan
    return out


def impute(x: np.ndarray, model: AfModel) -> np.ndarray:
    """An unknown P coherence (no usable P segments) takes the model's mean: no evidence either
    way. The RR features are never imputed (a window without them has no decision)."""
    x = np.array(x, dtype=np.float64, copy=True)
    col = x[..., P_FEATURE]
    col[~np.isfinite(col)] = model.mean[P_FEATURE]
    return x


# -- the streaming condition ---------------------------------------------------------------------
@dataclass(frozen=True)
class AfDecision:
    """One beat's AF evidence: the window's features and the quality it was decided at.
    ``AfDetector.trace`` collects these for offline evaluation (the model can be refitted on them)."""

    index: int
    features: tuple[float, ...]
    quality: float


class _Window:
    """The last ``size`` beats' RR, label and P segment in contiguous arrays (a buffer of twice
    the size, shifted when full), so each beat's window is a view, not a copy."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rr = np.full(2 * size, np.nan)
        self.v = np.zeros(2 * size, dtype=bool)
        self.seg: np.ndarray | None = None  # (2 * size, n_samples, n_leads), NaN where unavailable
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def push(self, rr: float, ventricular: bool, segment: np.ndarray | None) -> None:
        if self.n == 2 * self.size:
            keep = self.size - 1
            for arr in (self.rr, self.v, self.seg):
                if arr is not None:
                    arr[:keep] = arr[self.n - keep : self.n]
            self.n = keep
        i = self.n
        self.rr[i] = rr
        self.v[i] = ventricular
        if segment is not None and (self.seg is None or self.seg.shape[1:] != segment.shape):
            self.seg = np.full((2 * self.size, *segment.shape), np.nan)
        if self.seg is not None:
            if segment is not None and segment.shape == self.seg.shape[1:]:
                self.seg[i] = segment
            else:
                self.seg[i] = np.nan
        self.n += 1

    def view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        a = max(0, self.n - self.size)
        return self.rr[a : self.n], self.v[a : self.n], None if self.seg is None else self.seg[a : self.n]


class AfDetector:
    """Streaming AF evidence and the ``atrial_fibrillation`` condition, fed beat by beat.

    ``on_beat(beat, p_segment, quality)``: ``p_segment`` is the filtered signal (n, leads) of
    ``P_WINDOW_S`` before the beat's R peak, or None when the history no longer holds it.
    ``trace``: set it to a list and every decision is appended (evaluation; off by default).
    """

    def __init__(self, fs: float, config: AfConfig | None = None, model: AfModel | None = None) -> None:
        self.fs = float(fs)
        self.cfg = config or AfConfig()
        self.model = model or load_model(self.cfg.model_file)
        self._win = _Window(int(self.cfg.window_beats))
        self.active = False
        self.probability: float | None = None  # the latest evidence (None = unknown)
        self.features: np.ndarray = np.full(len(FEATURES), np.nan)
        self.trace: list[AfDecision] | None = None
        self._run_state: bool | None = None  # the sign of the current run of decisions
        self._run_start = 0  # index of the run's first beat

    @property
    def active_kinds(self) -> frozenset[str]:
        return frozenset((KIND,)) if self.active else frozenset()

    @staticmethod
    def segment_bounds(index: int, fs: float) -> tuple[int, int]:
        """Sample range [a, b) of the P window before the R peak at ``index``."""
        return index - int(round(P_WINDOW_S[0] * fs)), index - int(round(P_WINDOW_S[1] * fs))

    def reset_window(self) -> None:
        """Forget the beats (after a gap that restarted beat detection); the condition is kept."""
        self._win.clear()

    def on_beat(self, beat: Beat, p_segment: np.ndarray | None, quality: float) -> list[RhythmEvent]:
        if not self.cfg.enabled:
            return []
        self._win.push(np.nan if beat.rr_s is None else float(beat.rr_s), bool(beat.ventricular),
                       None if p_segment is None else np.asarray(p_segment))
        rr, v, seg = self._win.view()
        self.features = window_features(rr, v, seg, self.cfg.min_intervals)
        if self.trace is not None:
            self.trace.append(AfDecision(beat.index, tuple(float(x) for x in self.features), float(quality)))
        return self.decide(self.features, quality, beat.index)

    def decide(self, features: np.ndarray, quality: float, index: int) -> list[RhythmEvent]:
        """The bedside decision for one beat's window and the persistence rule; the evaluation
        replays cached features through this same method."""
        self.features = np.asarray(features, dtype=np.float64)
        if quality < self.cfg.min_quality or not np.isfinite(self.features[:RR_FEATURES]).all():
            self.probability = None
            decision = None
        else:
            self.probability = float(self.model.evidence(self.features)[0])
            decision = self.probability >= self.model.alarm_threshold
        return self._persist(decision, index)

    def _persist(self, decision: bool | None, index: int) -> list[RhythmEvent]:
        """Flip the condition once the decisions have agreed for onset_s / offset_s."""
        if decision is None or decision != self._run_state:
            self._run_state = decision
            self._run_start = index
        if decision is None or decision == self.active:
            return []
        need = self.cfg.onset_s if decision else self.cfg.offset_s
        if index - self._run_start < need * self.fs:
            return []
        self.active = decision
        # the event's index is where the run of agreeing evidence began (the alarm comes need s later)
        return [RhythmEvent(KIND, "onset" if decision else "offset", int(self._run_start), self._evidence())]

    def _evidence(self) -> dict[str, Any]:
        f = {k: (None if not np.isfinite(v) else round(float(v), 4)) for k, v in zip(FEATURES, self.features)}
        return {"probability": None if self.probability is None else round(self.probability, 3),
                "alarm_threshold": round(self.model.alarm_threshold, 3), "features": f,
                "window_beats": min(self._win.n, self._win.size), "run_start_s": round(self._run_start / self.fs, 2),
                "persisted_s": self.cfg.onset_s if self.active else self.cfg.offset_s}
