"""Atrial fibrillation, classically: an irregular, unpredictable ventricular response without
consistent P waves.

The evidence is read over a window of the last ``AfConfig.window_beats`` (60) beats, at most once
per ``AfConfig.decide_every_s`` (2 s) of signal, from five features of the RR intervals between
supraventricular beats and of the atrial window before each QRS:

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
* ``heart_rate``: 60 / median RR (AF conducts fast unless rate-controlled; a weak feature);
* ``pnn10``: the share of successive intervals that differ by more than 10% of the median RR
  (how often the rhythm changes, where ``ln_mad`` says by how much).

**Ectopy rejection**: every RR interval that ends on an ectopic beat, or follows one (the
coupling interval and the compensatory pause), is dropped before any RR feature, and ectopic
beats give no P segment. A beat is ectopic for AF when the morphology classifier labels it
ventricular *and* it is wide against the window's other beats (``af_ventricular``): that
classifier calls a moderately matching beat ventricular as soon as it comes early, which in AF is
every other beat. Supraventricular ectopics are not labelled; the median-based irregularity and
the entropy are what keep isolated APCs and patterned ectopy from looking like AF.

**Decision**: ``AfModel`` (one layer of four tanh units and a logistic output, or plain logistic
weights, over the standardised features), fitted by record-grouped cross-validation in
``edge_ecg.eval.af_eval``, gives a probability ``p``; a read is "AF" when p reaches the threshold
and the window's entropy is at least ``gate_cosen`` (the 10th percentile of the training AF
records': AF is never predictable, whatever the other features say). Two operating points share
that evidence:

* a recording (a 9-61 s strip) is AF when ``p >= threshold`` (and the gate) for its one window
  (all its beats; a longer recording: for most of its reads);
* the bedside condition ``atrial_fibrillation`` is raised once ``p >= alarm_threshold`` (and the
  gate) at every read for ``onset_s`` (30 s) and cleared once that has failed at every read for
  ``offset_s`` (30 s). ``alarm_threshold`` is higher because a monitor watches for hours: it is
  chosen on long annotated records by leave-one-record-out cross-validation.

A read without ``min_intervals`` clean intervals, or below ``min_quality``, is "unknown" and
restarts either run, so the condition holds its state while the rhythm cannot be read.
"""

from __future__ import annotations

import json
import math
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_ecg.dsp.types import Beat, RhythmEvent
from edge_ecg.errors import ConfigError, InputError

KIND = "atrial_fibrillation"
FEATURES = ("ln_mad", "cosen", "p_coherence", "heart_rate", "pnn10")
RR_FEATURES = 2  # the first two need clean intervals; without them there is no decision
P_FEATURE = 2  # the one feature that may be unknown (imputed) in a decided window
# the atrial wave before a QRS: P onset is 120-200 ms (PR) before QRS onset, itself ~40 ms before R
P_WINDOW_S = (0.32, 0.08)
_MIN_R_S = 0.03  # sample-entropy tolerance floor (Lake & Moorman's smallest useful r)
_MIN_MATCHES = 5  # sample entropy needs this many (m+1)-matches to be estimated
_WIDE_S = 0.02  # a "ventricular" beat this much wider than the window's others is ectopic for AF


@dataclass(frozen=True)
class AfModel:
    """AF evidence from the standardised features z_i = (x_i - mean_i) / scale_i.

    Without ``hidden`` it is logistic: p = 1 / (1 + exp(-(bias + sum(w_i * z_i)))). With it, one
    small tanh layer in between: h_j = tanh(hidden_bias_j + sum_i hidden[i][j] * z_i) and
    p = 1 / (1 + exp(-(bias + sum_j w_j * h_j))): the features' effects are not additive (an
    irregular rhythm with clear P waves is "other rhythm", not AF; a fast regular one is neither),
    and four tanh units are enough to say so. Plain numpy either way.

    The shipped values (``af_model.json``) are the ones the cross-validated procedure selects on
    all shared records; docs/dsp-alarms.md gives that procedure's out-of-fold figures.
    """

    weights: tuple[float, ...] = (1.0, 1.0, -1.0, 0.5, 0.5)
    bias: float = 0.0
    mean: tuple[float, ...] = (-2.5, -1.5, 0.4, 80.0, 0.4)
    scale: tuple[float, ...] = (0.8, 0.6, 0.3, 20.0, 0.3)
    threshold: float = 0.5  # per-recording operating point
    gate_cosen: float = -1.9  # a window this predictable is never AF
    alarm_threshold: float = 0.9  # bedside operating point (30 s persistence)
    hidden: tuple[tuple[float, ...], ...] = ()  # (len(FEATURES), units) tanh layer; () = logistic
    hidden_bias: tuple[float, ...] = ()
    provenance: dict = field(default_factory=dict, compare=False)

    def probability(self, x: np.ndarray) -> np.ndarray:
        """AF probability per row of ``x`` (n, len(FEATURES)), unknown P coherence imputed."""
        x = impute(np.atleast_2d(np.asarray(x, dtype=np.float64)), self)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        if self.hidden:
            z = np.tanh(z @ np.asarray(self.hidden, dtype=np.float64) + np.asarray(self.hidden_bias, dtype=np.float64))
        s = self.bias + z @ np.asarray(self.weights, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(s, -50, 50)))

    def evidence(self, x: np.ndarray) -> np.ndarray:
        """``probability``, but 0 where the window is more predictable than ``gate_cosen``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return np.where(x[:, 1] >= self.gate_cosen, self.probability(x), 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = {"features": list(FEATURES), "weights": [float(v) for v in self.weights], "bias": float(self.bias),
             "mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale],
             "threshold": float(self.threshold), "gate_cosen": float(self.gate_cosen),
             "alarm_threshold": float(self.alarm_threshold)}
        if self.hidden:
            d["hidden"] = [[float(v) for v in row] for row in self.hidden]
            d["hidden_bias"] = [float(v) for v in self.hidden_bias]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AfModel":
        if list(d.get("features", FEATURES)) != list(FEATURES):
            raise ValueError(f"features {d.get('features')} are not this detector's {list(FEATURES)}")
        n = len(FEATURES)
        vec = {k: tuple(float(v) for v in d[k]) for k in ("weights", "mean", "scale")}
        hidden = tuple(tuple(float(v) for v in row) for row in d.get("hidden", ()))
        hidden_bias = tuple(float(v) for v in d.get("hidden_bias", ()))
        units = len(hidden_bias)
        if hidden and (len(hidden) != n or any(len(row) != units for row in hidden) or units == 0):
            raise ValueError(f"hidden needs {n} rows of len(hidden_bias) values")
        if len(vec["mean"]) != n or len(vec["scale"]) != n or min(vec["scale"]) <= 0:
            raise ValueError(f"mean and scale need {n} values each (scale > 0)")
        if len(vec["weights"]) != (units if hidden else n):
            raise ValueError(f"weights need {units if hidden else n} values")
        return cls(**vec, bias=float(d["bias"]), threshold=float(d["threshold"]), gate_cosen=float(d["gate_cosen"]),
                   alarm_threshold=float(d.get("alarm_threshold", d["threshold"])), hidden=hidden, hidden_bias=hidden_bias)


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
    decide_every_s: float = 2.0  # the window is read at most once per this much signal (0 = every beat)
    model_file: str | None = None  # another AfModel JSON; None = the shipped af_model.json

    def validate(self, where: str = "dsp.af") -> None:
        if int(self.window_beats) < 8 or not 4 <= int(self.min_intervals) <= int(self.window_beats):
            raise ConfigError(f"{where}.min_intervals", "need 4 <= min_intervals <= window_beats and window_beats >= 8")
        for name in ("onset_s", "offset_s"):
            if not float(getattr(self, name)) >= 0:
                raise ConfigError(f"{where}.{name}", "must be >= 0 seconds")
        if not 0 <= float(self.decide_every_s) <= 10.0:
            raise ConfigError(f"{where}.decide_every_s", "must be 0 (every beat) .. 10 seconds")


# -- features ------------------------------------------------------------------------------------
def _median(x: np.ndarray) -> float:
    """The median of a short 1-D array (np.median's generality costs more than the sort here)."""
    s = np.sort(x)
    n = s.size
    return float(0.5 * (s[(n - 1) // 2] + s[n // 2]))


def clean_intervals(rr: np.ndarray, ventricular: np.ndarray) -> np.ndarray:
    """Mask of the RR intervals kept for AF: known, not ending on a ventricular beat and not
    following one (a PVC's coupling interval and its compensatory pause are both dropped)."""
    rr = np.asarray(rr, dtype=np.float64)
    v = np.asarray(ventricular, dtype=bool)
    after = np.zeros_like(v)
    after[1:] = v[:-1]
    return np.isfinite(rr) & (rr > 0) & ~v & ~after


def af_ventricular(ventricular: bool, width_s: float | None, normal_width_s: float | None) -> bool:
    """Whether a beat the morphology step labelled ventricular is ectopic for AF's purposes.

    That classifier leans towards "ventricular" (a missed VT costs more than a false one): a beat
    whose shape matches the dominant template only moderately is called ventricular as soon as
    it comes early, and on a single handheld lead a template learned on an odd first beat makes
    most beats "ventricular" (many short CinC 2017 strips, AF or not, had more than half of
    their beats so labelled and no decision at all). In AF every other beat comes early and the
    fibrillatory waves ride on the QRS, so for AF a beat is ectopic only when it is also wide:
    wider than the window's other beats (``normal_width_s``) by a quarter or 20 ms, as a
    ventricular beat is. A beat of unknown width keeps its label.
    """
    if not ventricular:
        return False
    if width_s is None or normal_width_s is None:
        return True
    return bool(width_s > min(1.25 * normal_width_s, normal_width_s + _WIDE_S))


def ln_mad(rr: np.ndarray, keep: np.ndarray) -> float:
    """ln(0.01 + median |difference of consecutive kept intervals| / median kept interval)."""
    both = keep[1:] & keep[:-1]
    if both.sum() < 2:
        return float("nan")
    d = np.abs(rr[1:] - rr[:-1])[both]
    return float(math.log(0.01 + _median(d) / _median(rr[keep])))


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


def pnn(rr: np.ndarray, keep: np.ndarray, median_rr: float) -> float:
    """Share of successive kept intervals that differ by more than 10% of the median interval
    (pNN50 scaled to the rate): how often the rhythm changes, not by how much. Sinus arrhythmia
    and isolated ectopy change few successive intervals that much; AF changes most."""
    both = keep[1:] & keep[:-1]
    if not both.any():
        return float("nan")
    d = np.abs(rr[1:] - rr[:-1])[both]
    return float(np.count_nonzero(d > 0.1 * median_rr) / d.size)


def centre(segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A P segment (n_samples, n_leads) without its mean, and its energy per lead: computed once
    per beat, so that a window's coherence is one sum (``coherence_of_centred``)."""
    c = segment - segment.mean(axis=0)
    return c, np.einsum("lk,lk->k", c, c)


def coherence_of_centred(c: np.ndarray, e: np.ndarray) -> float:
    """``p_coherence`` of segments already centred (``c``: (n, n_samples, n_leads)) with their
    energies ``e`` (n, n_leads)."""
    n = c.shape[0]
    if n < 3:
        return float("nan")
    total = c.sum(axis=0)
    kept = np.einsum("lk,lk->k", total, total)
    energy = e.sum(axis=0)
    ok = energy > 1e-12
    if not ok.any():
        return float("nan")
    return float(np.max((kept[ok] / energy[ok] - 1.0) / (n - 1.0)))


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
    med = _median(rr[keep])
    out[3] = 60.0 / med
    out[4] = pnn(rr, keep, med)
    if segments is not None:
        seg = np.asarray(segments)
        ok = ~v & np.isfinite(seg).all(axis=tuple(range(1, seg.ndim)))
        out[2] = p_coherence(seg[ok]) if ok.sum() >= 3 else np.nan
    return out


def _window_features_centred(rr: np.ndarray, v: np.ndarray, c: np.ndarray | None, e: np.ndarray | None,
                             has: np.ndarray | None, min_intervals: int) -> np.ndarray:
    """``window_features`` from per-beat centred P segments (the streaming detector's fast path;
    ``tests/test_af.py`` checks that both give the same features)."""
    out = window_features(rr, v, None, min_intervals)
    if c is not None and np.isfinite(out[0]):
        ok = ~v & has
        if ok.sum() >= 3:
            out[2] = coherence_of_centred(c[ok], e[ok])
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
    """The last ``size`` beats' RR, AF-ectopy label, QRS width and P segment in contiguous arrays
    (a buffer of twice the size, shifted when full), so each beat's window is a view, not a copy."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rr = np.full(2 * size, np.nan)
        self.v = np.zeros(2 * size, dtype=bool)
        self.width = np.full(2 * size, np.nan)  # QRS width (s), NaN unknown
        self.seg: np.ndarray | None = None  # (2 * size, n_samples, n_leads) centred P segments
        self.energy: np.ndarray | None = None  # (2 * size, n_leads) their energies
        self.has = np.zeros(2 * size, dtype=bool)  # a P segment is held for the beat
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def normal_width(self) -> float | None:
        """Median QRS width of the window's supraventricular beats (None before there are 3)."""
        sl = slice(max(0, self.n - self.size), self.n)
        w = self.width[sl]
        kept = w[np.isfinite(w) & ~self.v[sl]]
        if kept.size >= 3:
            return _median(kept)
        # (nearly) every beat called ventricular: that says more about the template than about
        # the rhythm (ectopy is the exception); the window's own median width is then the norm
        w = w[np.isfinite(w)]
        return _median(w) if w.size >= 3 else None

    def push(self, rr: float, ventricular: bool, width: float, segment: np.ndarray | None) -> None:
        if self.n == 2 * self.size:
            keep = self.size - 1
            for arr in (self.rr, self.v, self.width, self.has, self.seg, self.energy):
                if arr is not None:
                    arr[:keep] = arr[self.n - keep : self.n]
            self.n = keep
        i = self.n
        self.rr[i] = rr
        self.v[i] = ventricular
        self.width[i] = width
        ok = segment is not None and bool(np.isfinite(segment).all())
        if ok and (self.seg is None or self.seg.shape[1:] != segment.shape):
            self.seg = np.zeros((2 * self.size, *segment.shape))
            self.energy = np.zeros((2 * self.size, segment.shape[1]))
            self.has[:] = False
        ok = ok and segment.shape == self.seg.shape[1:]
        if ok:
            # at float32 precision, as the evaluation's beat cache keeps it: a replay of cached
            # beats then reads exactly the windows the stream read
            self.seg[i], self.energy[i] = centre(segment.astype(np.float32).astype(np.float64))
        self.has[i] = ok
        self.n += 1

    def features(self, min_intervals: int) -> np.ndarray:
        a = max(0, self.n - self.size)
        sl = slice(a, self.n)
        if self.seg is None:
            return _window_features_centred(self.rr[sl], self.v[sl], None, None, None, min_intervals)
        return _window_features_centred(self.rr[sl], self.v[sl], self.seg[sl], self.energy[sl], self.has[sl], min_intervals)


@dataclass(frozen=True)
class BeatInput:
    """What the AF detector keeps of one beat (``AfDetector.beat_log`` collects these, so an
    evaluation can replay a record's beats through other feature settings without re-streaming)."""

    index: int
    rr_s: float  # NaN unknown
    ventricular: bool  # the morphology step's label
    width_s: float  # NaN unknown
    correlation: float  # NaN unknown
    quality: float
    segment: np.ndarray | None  # the P window (n_samples, n_leads), None when not held


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
        self.beat_log: list[BeatInput] | None = None  # set to a list: every beat's input is appended
        self._every = int(round(float(self.cfg.decide_every_s) * self.fs))
        self._last_read: int | None = None  # index of the beat at which the window was last read
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
        self._last_read = None

    def on_beat(self, beat: Beat, p_segment: np.ndarray | None, quality: float) -> list[RhythmEvent]:
        if not self.cfg.enabled:
            return []
        return self.feed(BeatInput(
            int(beat.index), np.nan if beat.rr_s is None else float(beat.rr_s), bool(beat.ventricular),
            np.nan if beat.width_s is None else float(beat.width_s),
            np.nan if beat.correlation is None else float(beat.correlation), float(quality),
            None if p_segment is None else np.asarray(p_segment)))

    def feed(self, b: BeatInput) -> list[RhythmEvent]:
        """One beat into the window; the window is read (features, evidence, persistence) at most
        once per ``decide_every_s`` of signal. Reading less often than every beat changes neither
        the window nor the 30 s rules: a run of agreeing decisions still has to span onset_s."""
        if self.beat_log is not None:
            # the analyzer's segment is a view of its history buffer, which moves on: keep a copy
            self.beat_log.append(b if b.segment is None else dataclasses.replace(b, segment=np.array(b.segment)))
        v = False
        if b.ventricular:
            v = af_ventricular(True, b.width_s if np.isfinite(b.width_s) else None, self._win.normal_width())
        self._win.push(b.rr_s, v, b.width_s, b.segment)
        if self._last_read is not None and b.index - self._last_read < self._every:
            return []
        self._last_read = b.index
        self.features = self.window_features()
        if self.trace is not None:
            self.trace.append(AfDecision(b.index, tuple(float(x) for x in self.features), float(b.quality)))
        return self.decide(self.features, b.quality, b.index)

    def window_features(self) -> np.ndarray:
        """The ``FEATURES`` of the current window (all the beats since a reset, up to window_beats)."""
        return self._win.features(self.cfg.min_intervals)

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
