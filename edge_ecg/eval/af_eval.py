"""Atrial fibrillation: the classical detector (``edge_ecg.dsp.af``) scored on annotated records.

Three kinds of folder, told apart by what they hold:

* ``REFERENCE.csv`` (PhysioNet/CinC 2017: N normal, A AF, O other rhythm, ~ too noisy): per
  record, AF vs not. The model is fitted and its threshold chosen inside record-grouped,
  class-stratified k-fold cross-validation (each record is its own group, so no record is ever
  on both sides); every figure printed is out of fold. "O" is "not AF" (the detector must not
  call other arrhythmias AF); "~" records are left out of Se and Sp (their rhythm is unknown)
  and how often they are called AF is reported on its own line.
* ``ludb.csv`` (LUDB, 10 s 12-lead ECGs): per record, AF vs not, with the shipped model; atrial
  flutter records are reported apart, neither AF nor not.
* WFDB records with ``.atr`` rhythm annotations (``(AFIB`` in ``aux_note``, as MIT-BIH): each whole
  record is streamed in 1 s blocks through ``StreamAnalyzer`` with the shipped model, and scored
  per minute (the evidence, and the alarm) and per AF episode, and every record without AF must
  raise no alarm. No parameter is fitted on these, so their figures are out of sample.

Per record, the decision comes from the same evidence as the bedside condition: a recording of
at most ``window_beats`` beats (every CinC 2017 strip but a few) is AF when the read of its one
window (all its beats) reaches the threshold; a longer one when the median of its reads does (a
record without any decided read is "not AF": no evidence). The bedside condition needs the
evidence positive at every read for 30 s; the per-record call asks less of a 9-61 s recording.

Each record is streamed once; what the AF detector was fed at each beat (``af.BeatInput``: RR,
morphology label, QRS width, P segment, quality) is cached under ``.cache/af`` (keyed by what is
kept of a beat, the analyzer's settings and the streaming code with its shipped AF model, see
``cache_key``), and the AF reads are recomputed from it through ``AfDetector.feed`` under any AF
setting, so cross-validation refits in minutes; a change of AF's code or model re-streams.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edge_ecg.dsp import af
from edge_ecg.dsp.af import AfConfig, AfDetector, AfModel
from edge_ecg.dsp.config import AnalyzerConfig
from edge_ecg.errors import InputError
from edge_ecg.eval.source_key import source_key

log = logging.getLogger(__name__)

BEATS_VERSION = "af-beats-1"  # bump when what the cache keeps of a beat (af.BeatInput) changes
DEFAULT_CACHE = Path(".cache") / "af"
CINC_CLASSES = ("N", "A", "O", "~")
N_BOOT = 2000
TARGET_SP = 0.95  # the per-recording operating point: keep 95% of training non-AF records below it
HIDDEN_UNITS = 4  # the AF model's tanh units (0 = logistic)
GATE_PERCENTILE = 10.0  # the entropy gate: this percentile of training AF records' median COSEn


# -- references --------------------------------------------------------------------------------
def read_cinc_reference(folder: Path) -> dict[str, str]:
    """``REFERENCE.csv``: record,class per line, class one of N A O ~."""
    path = folder / "REFERENCE.csv"
    out: dict[str, str] = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if not row:
                continue
            if len(row) < 2 or row[1].strip() not in CINC_CLASSES:
                raise InputError(f"{path}: line {i + 1}", f"expected 'record,N|A|O|~', got {row!r}")
            out[row[0].strip()] = row[1].strip()
    if not out:
        raise InputError(path, "no records listed")
    return out


def read_ludb_reference(folder: Path) -> dict[str, str]:
    """``ludb.csv`` rhythm column -> "A" (atrial fibrillation), "F" (atrial flutter), "N" (other)."""
    path = folder / "ludb.csv"
    out: dict[str, str] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                rid, rhythm = row["ID"].strip(), row["Rhythms"].lower()
            except (KeyError, AttributeError) as exc:
                raise InputError(path, f"needs ID and Rhythms columns: {exc}") from exc
            out[rid] = "A" if "fibrillation" in rhythm else ("F" if "flutter" in rhythm else "N")
    return out


def rhythm_spans(hea: Path, n_samples: int) -> dict[str, list[tuple[int, int]]]:
    """Sample spans of each rhythm in the ``.atr`` aux notes (``"(AFIB"`` -> [(start, stop), ...])."""
    import wfdb

    try:
        ann = wfdb.rdann(str(hea.with_suffix("")), "atr")
    except Exception as exc:
        raise InputError(hea.with_suffix(".atr"), f"cannot read rhythm annotations: {exc}") from exc
    spans: dict[str, list[tuple[int, int]]] = {}
    cur, start = None, 0
    for s, aux in zip(ann.sample, ann.aux_note or [""] * len(ann.sample)):
        aux = (aux or "").strip("\x00").strip()
        if aux.startswith("("):
            if cur is not None:
                spans.setdefault(cur, []).append((start, int(s)))
            cur, start = aux, int(s)
    if cur is not None:
        spans.setdefault(cur, []).append((start, n_samples))
    return spans


# -- one streamed record -----------------------------------------------------------------------
@dataclass
class Beats:
    """One record streamed through ``StreamAnalyzer``: what the AF detector was fed at each beat
    (``af.BeatInput``), so the AF features can be recomputed under any AF setting without
    streaming the record again. ``events`` are the AF events the stream itself emitted (only when
    just streamed, not from the cache: they depend on the model)."""

    name: str
    fs: float
    n_samples: int
    index: np.ndarray  # (n,) R-peak sample
    rr: np.ndarray  # (n,) seconds, NaN unknown
    ventricular: np.ndarray  # (n,) the morphology label
    width: np.ndarray  # (n,) QRS width (s), NaN unknown
    correlation: np.ndarray  # (n,) template correlation, NaN unknown
    quality: np.ndarray  # (n,) the analyzer's quality score at the beat
    segments: np.ndarray  # (n, samples, leads) float32 P windows, NaN rows where not held
    events: list[tuple[str, int]] | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, fs=self.fs, n_samples=self.n_samples, index=self.index, rr=self.rr, ventricular=self.ventricular,
                 width=self.width, correlation=self.correlation, quality=self.quality, segments=self.segments)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, name: str) -> "Beats":
        z = np.load(path)
        return cls(name, float(z["fs"]), int(z["n_samples"]), z["index"], z["rr"], z["ventricular"], z["width"],
                   z["correlation"], z["quality"], z["segments"])

    def inputs(self) -> list[af.BeatInput]:
        seg_ok = np.isfinite(self.segments).all(axis=(1, 2)) if self.segments.ndim == 3 else np.zeros(self.index.size, bool)
        return [af.BeatInput(int(i), float(r), bool(v), float(w), float(c), float(q),
                             self.segments[k].astype(np.float64) if seg_ok[k] else None)
                for k, (i, r, v, w, c, q) in enumerate(zip(self.index, self.rr, self.ventricular, self.width,
                                                           self.correlation, self.quality))]


@dataclass
class Trace:
    """A record's AF decisions: the features each time the window was read (every
    ``decide_every_s``), and every beat's index and RR (for the reference rule)."""

    name: str
    fs: float
    n_samples: int
    index: np.ndarray  # (n,) R-peak sample of the beat at which the window was read
    features: np.ndarray  # (n, len(af.FEATURES)) of the window ending at that beat
    quality: np.ndarray  # (n,) the analyzer's quality score when the beat was decided
    beat_index: np.ndarray  # (m,) every beat
    beat_rr: np.ndarray  # (m,) seconds, NaN unknown
    final: np.ndarray  # (len(af.FEATURES),) the last window of the record (all of it when shorter)
    final_quality: float = 1.0
    events: list[tuple[str, int]] | None = None


def decisions(b: Beats, cfg: AfConfig) -> Trace:
    """Feed a record's beats through ``AfDetector.feed`` (the streaming code path) under ``cfg``
    and keep each read of the window."""
    det = AfDetector(b.fs, cfg, AfModel())
    det.trace = []
    for x in b.inputs():
        det.feed(x)
    tr = det.trace
    n = len(tr)
    return Trace(
        name=b.name, fs=b.fs, n_samples=b.n_samples,
        index=np.array([d.index for d in tr], dtype=np.int64),
        features=np.array([d.features for d in tr], dtype=np.float64).reshape(n, len(af.FEATURES)),
        quality=np.array([d.quality for d in tr], dtype=np.float64),
        beat_index=b.index, beat_rr=b.rr, final=det.window_features(),
        final_quality=float(b.quality[-1]) if b.quality.size else 0.0, events=b.events)


def stream_beats(hea: Path, config: AnalyzerConfig | None = None, block_s: float = 1.0) -> Beats:
    """Stream a whole record in ``block_s`` blocks through a fresh ``StreamAnalyzer`` (the daemon's
    chain, with the shipped AF model) and keep what the AF detector is fed, and its events."""
    from edge_ecg.dsp.analyzer import StreamAnalyzer
    from edge_ecg.records import read_record
    from edge_ecg.stream.block import SampleBlock

    rec = read_record(hea)
    an = StreamAnalyzer(rec.fs, rec.leads, config)
    an.af.beat_log = []
    events: list[tuple[str, int]] = []
    step = max(int(round(block_s * rec.fs)), 1)
    for a in range(0, rec.n_samples, step):
        x = rec.signals[a : a + step]
        nan = np.isnan(x)
        up = an.process(SampleBlock(start=a, samples=x, fs=rec.fs, leads=rec.leads, lead_off=nan if nan.any() else None))
        events += [(e.state, e.index) for e in up.events if e.kind == af.KIND]
    log_ = an.af.beat_log
    a0, b0 = AfDetector.segment_bounds(0, rec.fs)
    seg = np.full((len(log_), b0 - a0, len(rec.leads)), np.nan, dtype=np.float32)
    for k, x in enumerate(log_):
        if x.segment is not None and x.segment.shape == seg.shape[1:]:
            seg[k] = x.segment
    col = lambda f, dt=np.float64: np.array([getattr(x, f) for x in log_], dtype=dt)
    return Beats(name=hea.stem, fs=rec.fs, n_samples=rec.n_samples, index=col("index", np.int64), rr=col("rr_s"),
                 ventricular=col("ventricular", bool), width=col("width_s"), correlation=col("correlation"),
                 quality=col("quality"), segments=seg, events=events)


def stream_trace(hea: Path, config: AnalyzerConfig | None = None, block_s: float = 1.0) -> Trace:
    """A record's AF decisions straight from the stream (``stream_beats`` then ``decisions``)."""
    return decisions(stream_beats(hea, config, block_s), (config or AnalyzerConfig()).af)


def cache_key(config: AnalyzerConfig | None) -> str:
    """What the cached beats depend on: what is kept of a beat, the P window, every analyzer
    setting and the streaming code with its shipped AF model. AF's own code, settings and model
    are in it too: while the atrial_fibrillation condition is on, a beat's morphology label is
    judged on its shape alone (``StreamAnalyzer._beat``), so the labels depend on the AF state.
    The AF features of other settings and of each fold's model are recomputed from these beats;
    that those beats' labels came from the shipped model's AF state is the approximation (only
    beats that are not wide can change label that way, and the AF ectopy rule ignores them)."""
    cfg = (config or AnalyzerConfig()).to_dict()
    blob = json.dumps({"v": BEATS_VERSION, "p": af.P_WINDOW_S, "cfg": cfg}, sort_keys=True, default=str)
    return hashlib.sha1((blob + source_key()).encode()).hexdigest()[:12]


def record_digest(hea: Path) -> str:
    """A digest of the record's content: its header and the signal files it names. Content, not
    modification times: a copy or a resync of the same data keeps its cached features."""
    h = hashlib.sha1(hea.read_bytes())
    files = []
    for line in hea.read_text(errors="replace").splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            name = line.split()[0]
            if name not in files:
                files.append(name)
    for name in files:
        try:
            h.update((hea.parent / name).read_bytes())
        except OSError as exc:
            raise InputError(hea.parent / name, f"signal file of {hea.name} cannot be read: {exc}") from exc
    return h.hexdigest()[:16]


def _one(args: tuple) -> Beats:
    hea, path, config = args
    if path is not None and path.is_file():
        return Beats.load(path, hea.stem)
    b = stream_beats(hea, config)
    if path is not None:
        b.save(path)
    return b


def beats(heads: Sequence[Path], cache: Path | None = DEFAULT_CACHE, config: AnalyzerConfig | None = None,
          progress: Callable[[int, int], None] | None = None, jobs: int = 1) -> list[Beats]:
    """The beats of every record, streamed once and cached under ``cache/<key>/<folder>/``, one
    file per record named for its content (``record_digest``)."""
    key = cache_key(config)
    todo = []
    for hea in heads:
        path = None
        if cache is not None:
            path = Path(cache) / key / hea.parent.name / f"{hea.stem}-{record_digest(hea)}.npz"
        todo.append((hea, path, config))
    out: list[Beats] = []
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for i, b in enumerate(pool.imap(_one, todo, chunksize=8)):
                out.append(b)
                if progress:
                    progress(i + 1, len(todo))
        return out
    for i, item in enumerate(todo):
        out.append(_one(item))
        if progress:
            progress(i + 1, len(todo))
    return out


def traces(heads: Sequence[Path], cache: Path | None = DEFAULT_CACHE, config: AnalyzerConfig | None = None,
           progress: Callable[[int, int], None] | None = None, jobs: int = 1) -> list[Trace]:
    """Every record's AF decisions under ``config.af``, from its (cached) beats."""
    cfg = (config or AnalyzerConfig()).af
    return [decisions(b, cfg) for b in beats(heads, cache, config, progress, jobs)]


# -- decisions from a trace --------------------------------------------------------------------
def decided(t: Trace, cfg: AfConfig) -> np.ndarray:
    """Beats with a decision (enough clean intervals, quality at least ``min_quality``)."""
    if t.features.shape[0] == 0:
        return np.zeros(0, bool)
    return (t.quality >= cfg.min_quality) & np.isfinite(t.features[:, : af.RR_FEATURES]).all(axis=1)


def evidence(t: Trace, model: AfModel, cfg: AfConfig) -> np.ndarray:
    """Per-beat AF evidence as the live detector computes it (gated probability); NaN = unknown."""
    if t.features.shape[0] == 0:
        return np.zeros(0)
    return np.where(decided(t, cfg), model.evidence(t.features), np.nan)


def record_score(ev: np.ndarray) -> float:
    """The recording's AF evidence: the median over its decided beats (0 with none: no evidence)."""
    ev = ev[np.isfinite(ev)]
    return float(np.median(ev)) if ev.size else 0.0


def record_evidence(t: Trace, model: AfModel, cfg: AfConfig) -> float:
    """The recording's AF evidence. A recording of at most ``window_beats`` beats (every CinC
    strip up to 60 beats) is one window: the evidence of its last read, which holds all of its
    beats (the early reads hold only the first dozen intervals). A longer one: the median over
    its reads (``record_score``). Unreadable (too few clean intervals, low quality): 0."""
    if t.beat_index.size <= cfg.window_beats:
        return float(model.evidence(t.final)[0]) if record_decided(t, cfg) else 0.0
    return record_score(evidence(t, model, cfg))


def training_rows(t: Trace, cfg: AfConfig) -> np.ndarray:
    """The windows a record teaches the model: what its decision is read from (``record_evidence``):
    its one whole window when it has at most ``window_beats`` beats, else every decided read."""
    if t.beat_index.size <= cfg.window_beats:
        return t.final[None] if record_decided(t, cfg) else np.zeros((0, len(af.FEATURES)))
    return t.features[decided(t, cfg)]


def record_decided(t: Trace, cfg: AfConfig) -> bool:
    """Whether ``record_evidence`` has anything to read (else the record is "not AF": no evidence)."""
    if t.beat_index.size <= cfg.window_beats:
        return bool(t.final_quality >= cfg.min_quality and np.isfinite(t.final[: af.RR_FEATURES]).all())
    return bool(decided(t, cfg).any())


def replay(t: Trace, model: AfModel, cfg: AfConfig) -> list[tuple[str, int]]:
    """The bedside condition's onsets/offsets from cached features, through ``AfDetector.decide``
    (the streaming code path; ``tests/test_af.py`` checks it gives the streamed events)."""
    det = AfDetector(t.fs, cfg, model)
    out = []
    for i, f, q in zip(t.index, t.features, t.quality):
        out += [(e.state, e.index) for e in det.decide(f, float(q), int(i))]
    return out


# -- fitting -------------------------------------------------------------------------------------
def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-2, iters: int = 50) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression by Newton's method (``x`` standardised)."""
    n, k = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(k + 1)
    reg = np.full(k + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ beta, -50, 50)))
        g = xa.T @ (w * (p - y)) + reg * beta
        h = (xa * (w * p * (1 - p))[:, None]).T @ xa + np.diag(reg)
        step = np.linalg.solve(h + 1e-9 * np.eye(k + 1), g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def fit_tanh_layer(x: np.ndarray, y: np.ndarray, w: np.ndarray, units: int = HIDDEN_UNITS, iters: int = 1500,
                   lr: float = 0.02, l2: float = 1e-3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One tanh layer and a logistic output (``AfModel`` with ``hidden``), fitted by full-batch
    Adam on the weighted cross-entropy with a small L2 penalty; a fixed seed, so the same
    training records always give the same model. Returns (hidden, hidden_bias, weights, bias)."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(0, 0.5, (x.shape[1], units)), np.zeros(units), rng.normal(0, 0.5, units), np.zeros(1)]
    m1 = [np.zeros_like(q) for q in params]
    m2 = [np.zeros_like(q) for q in params]
    wn = w / w.sum()
    for t in range(1, iters + 1):
        w1, b1, w2, b2 = params
        h = np.tanh(x @ w1 + b1)
        p = 1.0 / (1.0 + np.exp(-np.clip(h @ w2 + b2[0], -50, 50)))
        g = wn * (p - y)
        gh = np.outer(g, w2) * (1.0 - h * h)
        grads = [x.T @ gh + l2 * w1, gh.sum(axis=0), h.T @ g + l2 * w2, np.array([g.sum()])]
        for i, gr in enumerate(grads):
            m1[i] = 0.9 * m1[i] + 0.1 * gr
            m2[i] = 0.999 * m2[i] + 0.001 * gr * gr
            params[i] = params[i] - lr * (m1[i] / (1 - 0.9 ** t)) / (np.sqrt(m2[i] / (1 - 0.999 ** t)) + 1e-8)
    return params[0], params[1], params[2], float(params[3][0])


def threshold_for_specificity(scores: np.ndarray, truth: np.ndarray, sp: float = TARGET_SP) -> float:
    """The lowest threshold that leaves at most a ``1 - sp`` share of the negative records at or
    above it: the most sensitive operating point with that specificity on these records."""
    neg = np.sort(np.asarray(scores)[~np.asarray(truth, bool)])[::-1]
    if neg.size == 0:
        return 0.5
    allowed = int(math.floor((1.0 - sp) * neg.size + 1e-9))
    return float(np.nextafter(neg[min(allowed, neg.size - 1)], np.inf))


def fit_model(train: Sequence[Trace], truth: np.ndarray, cfg: AfConfig, alarm_threshold: float | None = None,
              units: int = HIDDEN_UNITS) -> AfModel:
    """The per-recording model from training records only: a tanh layer of ``units`` (0: plain
    logistic weights) fitted on every decided read of the window (each record weighing one, the
    two classes equally), the entropy gate (10th percentile of the AF records' median window
    entropy), and the threshold on the records' evidence (``record_evidence``) that keeps
    ``TARGET_SP`` of the training non-AF records below it."""
    xs, ys, ws, af_cos = [], [], [], []
    npos = max(int(truth.sum()), 1)
    nneg = max(int((~truth).sum()), 1)
    for t, y in zip(train, truth):
        rows = training_rows(t, cfg)
        if not rows.shape[0]:
            continue
        xs.append(rows)
        ys.append(np.full(rows.shape[0], float(y)))
        ws.append(np.full(rows.shape[0], 1.0 / rows.shape[0] / (npos if y else nneg)))
        if y:
            af_cos.append(float(np.median(rows[:, 1])))
    x, y, w = np.vstack(xs), np.concatenate(ys), np.concatenate(ws)
    mean = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    base = AfModel(weights=(0.0,) * len(af.FEATURES), mean=tuple(mean), scale=tuple(scale))
    z = (af.impute(x, base) - mean) / scale
    gate = float(np.percentile(af_cos, GATE_PERCENTILE)) if af_cos else -np.inf
    hidden: tuple = ()
    hidden_bias: tuple = ()
    if units:
        w1, b1, coef, bias = fit_tanh_layer(z, y, w, units)
        hidden = tuple(tuple(float(v) for v in row) for row in w1)
        hidden_bias = tuple(float(v) for v in b1)
    else:
        coef, bias = fit_logistic(z, y, w * len(w))
    model = AfModel(weights=tuple(float(c) for c in coef), bias=bias, mean=tuple(float(m) for m in mean),
                    scale=tuple(float(s) for s in scale), threshold=0.5, gate_cosen=gate, hidden=hidden,
                    hidden_bias=hidden_bias)
    scores = np.array([record_evidence(t, model, cfg) for t in train])
    thr = threshold_for_specificity(scores, np.asarray(truth, bool))
    return dataclasses.replace(model, threshold=thr, alarm_threshold=thr if alarm_threshold is None else alarm_threshold)


def grouped_folds(names: Sequence[str], labels: Sequence[str], k: int = 10, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Record-grouped k folds, stratified by label: every record (its own group) is in exactly
    one test fold and in none of that fold's training records."""
    if len(set(names)) != len(names):
        raise InputError("grouped_folds", "record names must be unique (one record = one group)")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    for lab in sorted(set(labels)):
        members = [n for n, l in zip(names, labels) if l == lab]
        rng.shuffle(members)
        for i, n in enumerate(members):
            fold_of[n] = i % k
    return [([n for n in names if fold_of[n] != f], [n for n in names if fold_of[n] == f]) for f in range(k)]


# -- scoring -----------------------------------------------------------------------------------
def se_sp(truth: np.ndarray, call: np.ndarray) -> tuple[float, float]:
    pos, neg = truth.sum(), (~truth).sum()
    se = float((call & truth).sum() / pos) if pos else float("nan")
    sp = float((~call & ~truth).sum() / neg) if neg else float("nan")
    return se, sp


def bootstrap(truth: np.ndarray, call: np.ndarray, groups: np.ndarray | None = None, n: int = N_BOOT, seed: int = 1) -> dict[str, list]:
    """95% percentile intervals of Se and Sp, resampling records (``groups``: the record of each
    row, so the rows of one record are drawn together)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(truth.size)
    uniq, inv = np.unique(groups, return_inverse=True)
    rows = [np.nonzero(inv == g)[0] for g in range(uniq.size)]
    se, sp = [], []
    for _ in range(n):
        pick = np.concatenate([rows[g] for g in rng.integers(0, uniq.size, uniq.size)])
        a, b = se_sp(truth[pick], call[pick])
        se.append(a)
        sp.append(b)

    def ci(v):
        v = np.asarray(v)
        v = v[np.isfinite(v)]
        return [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)] if v.size else [None, None]

    return {"se_ci": ci(se), "sp_ci": ci(sp)}


def figures(truth: np.ndarray, call: np.ndarray, groups: np.ndarray | None = None) -> dict[str, Any]:
    """Se, Sp with their 95% record-bootstrap intervals, and the counts."""
    truth, call = np.asarray(truth, bool), np.asarray(call, bool)
    se, sp = se_sp(truth, call)
    r = lambda v: None if not np.isfinite(v) else round(v, 4)
    return {"se": r(se), "sp": r(sp), **bootstrap(truth, call, groups),
            "tp": int((call & truth).sum()), "fn": int((~call & truth).sum()),
            "fp": int((call & ~truth).sum()), "tn": int((~call & ~truth).sum())}


def dash_call(rr: np.ndarray) -> bool:
    """Reference: Dash et al. 2009 (Ann Biomed Eng 37:1701), fixed literature thresholds on one RR
    segment: AF when normalised RMSSD > 0.1, Shannon entropy (16 bins) > 0.7 and turning-point
    ratio within 0.54-0.77, after dropping the 1/16 longest and shortest intervals (their 8 of
    128). No ectopy rejection beyond that trimming, no P waves."""
    rr = rr[np.isfinite(rr) & (rr > 0)]
    if rr.size < 12:
        return False
    k = rr.size // 16
    order = np.argsort(rr)
    keep = np.ones(rr.size, bool)
    if k:
        keep[order[:k]] = False
        keep[order[-k:]] = False
    x = rr[keep]
    nrm = np.sqrt(np.mean(np.diff(x) ** 2)) / np.mean(x)
    hist, _ = np.histogram(x, bins=16)
    p = hist[hist > 0] / x.size
    she = float(-(p * np.log(p)).sum() / np.log(16))
    mid = x[1:-1]
    tp = ((mid > x[:-2]) & (mid > x[2:])) | ((mid < x[:-2]) & (mid < x[2:]))
    tpr = tp.sum() / max(x.size - 2, 1)
    return bool(nrm > 0.1 and she > 0.7 and 0.54 <= tpr <= 0.77)


# -- the three kinds of folder -----------------------------------------------------------------
@dataclass
class AfReport:
    """What ``evaluate_af`` measured; ``results`` is what ``--json`` prints and the result file holds."""

    kind: str  # "cinc2017" | "ludb" | "wfdb"
    results: dict[str, Any]
    lines: list[str] = field(default_factory=list)

    def format(self) -> str:
        return "\n".join(self.lines)


def _heads(folder: Path, names: Sequence[str]) -> list[Path]:
    heads = []
    for n in names:
        hea = folder / f"{n}.hea"
        if not hea.is_file():
            raise InputError(hea, "listed in the reference but missing")
        heads.append(hea)
    return heads


def _row(label: str, f: dict[str, Any]) -> str:
    fmt = lambda v: "  -  " if v is None else f"{v:.3f}"
    return (f"{label:<46} Se {fmt(f['se'])} [{fmt(f['se_ci'][0])}-{fmt(f['se_ci'][1])}]  "
            f"Sp {fmt(f['sp'])} [{fmt(f['sp_ci'][0])}-{fmt(f['sp_ci'][1])}]  TP {f['tp']} FN {f['fn']} FP {f['fp']} TN {f['tn']}")


def evaluate_cinc(folder: Path, cache: Path | None = DEFAULT_CACHE, folds: int = 10, seed: int = 0,
                  config: AnalyzerConfig | None = None, limit: int | None = None, jobs: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> tuple[AfReport, AfModel]:
    """Out-of-fold per-record AF vs not on a CinC 2017 folder; also returns the model the same
    procedure selects on all of the folder's scored records (what ships)."""
    ref = read_cinc_reference(folder)
    names = sorted(ref)
    if limit:
        names = names[:: max(len(names) // limit, 1)][:limit]
    cfg = (config or AnalyzerConfig()).af
    trs = dict(zip(names, traces(_heads(folder, names), cache, config, progress, jobs)))
    scored = [n for n in names if ref[n] != "~"]
    noisy = [n for n in names if ref[n] == "~"]
    truth_of = {n: ref[n] == "A" for n in names}
    oof: dict[str, bool] = {}
    fold_models = []
    for train, test in grouped_folds(scored, [ref[n] for n in scored], folds, seed):
        if set(train) & set(test):
            raise AssertionError("a record on both sides of a fold")
        m = fit_model([trs[n] for n in train], np.array([truth_of[n] for n in train]), cfg)
        fold_models.append(m)
        for n in test:
            oof[n] = record_evidence(trs[n], m, cfg) >= m.threshold
    final = fit_model([trs[n] for n in scored], np.array([truth_of[n] for n in scored]), cfg)
    truth = np.array([truth_of[n] for n in scored])
    call = np.array([oof[n] for n in scored])
    ours = figures(truth, call)
    dash = figures(truth, np.array([dash_call(trs[n].beat_rr) for n in scored]))
    every = figures(truth, np.ones(truth.size, bool))
    by_class = {c: round(float(np.mean([oof[n] for n in scored if ref[n] == c])), 4) for c in ("N", "A", "O")}
    # the noisy records take no part in any fit: each is scored by one fold's model, out of fold
    noisy_call = [record_evidence(trs[n], fold_models[i % folds], cfg) >= fold_models[i % folds].threshold for i, n in enumerate(noisy)]
    by_class["~"] = round(float(np.mean(noisy_call)), 4) if noisy else None
    undecided = {c: sum(not record_decided(trs[n], cfg) for n in names if ref[n] == c) for c in CINC_CLASSES}
    results = {
        "se": ours["se"], "sp": ours["sp"], "records": len(scored), "kind": "cinc2017",
        "ours": ours, "reference_dash2009": dash, "reference_raise_every_record": every,
        "called_af_by_class": by_class, "noisy_records_left_out": len(noisy), "records_without_decision": undecided,
        "folds": folds, "seed": seed,
        "cv": "record-grouped (one record = one group), class-stratified folds; weights, entropy gate and threshold fitted on each fold's training records",
        "fold_models": [m.to_dict() for m in fold_models], "config": dataclasses.asdict(cfg),
        "model_all_records": final.to_dict(),
        "targets": {"se": 0.90, "sp": 0.95, "se_met": bool(ours["se"] >= 0.90), "sp_met": bool(ours["sp"] >= 0.95)},
    }
    lines = [
        f"CinC 2017 {folder.name}: {len(scored)} records scored (A {int(truth.sum())}, N+O {int((~truth).sum())}); "
        f"{len(noisy)} '~' (noisy) left out of Se/Sp; {folds}-fold record-grouped CV, all figures out of fold, 95% record-bootstrap intervals",
        _row("ours: AF evidence for most of the record", ours),
        _row("reference: Dash 2009 rule, fixed thresholds", dash),
        _row("reference: raise every record", every),
        f"called AF, by class: N {by_class['N']:.3f}  A {by_class['A']:.3f}  O {by_class['O']:.3f}  "
        + ("" if by_class["~"] is None else f"~ {by_class['~']:.3f}"),
        "records without a single decided beat (called not AF): " + ", ".join(f"{c} {undecided[c]}" for c in CINC_CLASSES),
        f"targets: Se >= 0.90 {'met' if results['targets']['se_met'] else 'NOT met'}; Sp >= 0.95 {'met' if results['targets']['sp_met'] else 'NOT met'}",
    ]
    return AfReport("cinc2017", results, lines), final


def evaluate_ludb(folder: Path, cache: Path | None = DEFAULT_CACHE, config: AnalyzerConfig | None = None,
                  model: AfModel | None = None, jobs: int = 1, progress: Callable[[int, int], None] | None = None) -> AfReport:
    """Per record AF vs not on LUDB (10 s, 12 leads) with the shipped model; nothing is fitted."""
    ref = read_ludb_reference(folder)
    data = folder / "data" if (folder / "data").is_dir() else folder
    names = sorted(ref, key=lambda n: (len(n), n))
    cfg = (config or AnalyzerConfig()).af
    model = model or af.load_model(cfg.model_file)
    trs = {t.name: t for t in traces(_heads(data, names), cache, config, progress, jobs)}
    score = {n: record_evidence(trs[n], model, cfg) for n in names}
    has = {n: record_decided(trs[n], cfg) for n in names}
    scored = [n for n in names if ref[n] != "F"]
    truth = np.array([ref[n] == "A" for n in scored])
    ours = figures(truth, np.array([score[n] >= model.threshold for n in scored]))
    flagged = [n for n in scored if ref[n] == "N" and score[n] >= model.threshold]
    flutter = [n for n in names if ref[n] == "F"]
    alarms = sum(any(s == "onset" for s, _ in replay(trs[n], model, cfg)) for n in names)
    results = {
        "se": ours["se"], "sp": ours["sp"], "records": len(scored), "kind": "ludb", "ours": ours,
        "reference_dash2009": figures(truth, np.array([dash_call(trs[n].beat_rr) for n in scored])),
        "non_af_records_with_af_evidence": flagged, "flutter_called_af": {n: bool(score[n] >= model.threshold) for n in flutter},
        "records_without_decision": {"af": sum(not has[n] for n in scored if ref[n] == "A"),
                                     "non_af": sum(not has[n] for n in scored if ref[n] == "N")},
        "alarms_raised": alarms, "model": model.to_dict(), "fitted_on_this_folder": False,
    }
    lines = [
        f"LUDB {folder.name}: {len(scored)} records (AF {int(truth.sum())}; {len(flutter)} flutter reported apart); "
        "shipped model, nothing fitted here; 95% record-bootstrap intervals",
        _row("ours: AF evidence for most of the record", ours),
        _row("reference: Dash 2009 rule, fixed thresholds", results["reference_dash2009"]),
        f"non-AF records with AF evidence: {len(flagged)} {flagged}; flutter called AF: "
        f"{sum(results['flutter_called_af'].values())}/{len(flutter)}",
        f"records without a decided beat (10 s at a slow rate holds < {cfg.min_intervals} clean intervals): "
        f"AF {results['records_without_decision']['af']}, non-AF {results['records_without_decision']['non_af']}",
        f"AF alarms raised: {alarms} (10 s records: the 30 s rule cannot fire; the evidence above is the check)",
    ]
    return AfReport("ludb", results, lines)


def _merge(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def sustained(t: Trace, ev: np.ndarray, secs: float) -> np.ndarray:
    """Per beat, the lowest evidence over the ``secs`` before it (NaN where that span is not fully
    decided or starts before the trace): the evidence level the 30 s rule would have held there."""
    n = t.index.size
    out = np.full(n, np.nan)
    w = int(round(secs * t.fs))
    if n == 0:
        return out
    lo = np.searchsorted(t.index, t.index - w, side="left")
    for i in range(n):
        if t.index[i] - w < t.index[0]:
            continue
        seg = ev[lo[i] : i + 1]
        if np.isfinite(seg).all():
            out[i] = seg.min()
    return out


@dataclass
class _Rec:
    hea: Path
    trace: Trace
    afib: list[tuple[int, int]]
    afl: list[tuple[int, int]]
    episodes: list[tuple[int, int]]  # AFIB merged across gaps < offset_s


def _alarm_stats(r: _Rec, ev: np.ndarray, cfg: AfConfig) -> tuple[float, list[float]]:
    """(highest sustained evidence away from AF, highest sustained evidence inside each AF episode
    of at least 60 s), in logits."""
    t = r.trace
    s = sustained(t, ev, cfg.onset_s)
    w = int(cfg.onset_s * t.fs)
    clear = int((cfg.offset_s + 60.0) * t.fs)  # the evidence window still holds AF beats after it ends
    near = np.zeros(t.index.size, bool)
    for a, b in r.afib + r.afl:
        near |= (t.index - w < b + clear) & (t.index > a)
    ok = np.isfinite(s)
    non_af = float(_logit(s[ok & ~near]).max()) if (ok & ~near).any() else -np.inf
    eps = []
    for a, b in r.episodes:
        if b - a < 60 * t.fs:
            continue
        inside = ok & (t.index - w >= a) & (t.index <= b)
        eps.append(float(_logit(s[inside]).max()) if inside.any() else -np.inf)
    return non_af, eps


def select_alarm_threshold(recs: Sequence[_Rec], model: AfModel, cfg: AfConfig) -> float:
    """The bedside operating point from long annotated records: halfway (in logits) between the
    highest evidence sustained for 30 s away from AF and the lowest such peak among AF episodes of
    at least 60 s, never below the per-recording threshold."""
    non, eps = [], []
    for r in recs:
        a, b = _alarm_stats(r, evidence(r.trace, model, cfg), cfg)
        non.append(a)
        eps += b
    hi_non = max(non) if non else -np.inf
    lo_af = min(eps) if eps else np.inf
    if np.isfinite(hi_non) and np.isfinite(lo_af) and lo_af > hi_non:
        mid = (hi_non + lo_af) / 2
    elif np.isfinite(hi_non):
        mid = hi_non + 1.0  # no separation (or no AF episode): above every sustained non-AF peak
    else:
        mid = float(_logit(model.threshold))
    return float(max(model.threshold, 1.0 / (1.0 + math.exp(-mid))))


def _score_alarms(recs: Sequence[_Rec], events: dict[str, list[tuple[str, int]]], cfg: AfConfig) -> dict[str, Any]:
    """Per minute (alarm active >= half of it), per AF episode, and false alarms."""
    rows, episodes, alarms, per_record = [], [], [], {}
    for r in recs:
        t = r.trace
        fs, n = t.fs, t.n_samples
        on_s, off_s = int(cfg.onset_s * fs), int(cfg.offset_s * fs)
        spans, on = [], None  # (raised, onset index, cleared)
        for state, i in events[t.name]:
            if state == "onset":
                on = i
            elif on is not None:
                spans.append((on + on_s, on, i + off_s))
                on = None
        if on is not None:
            spans.append((on + on_s, on, n))
        active = np.zeros(n, bool)
        for raised, _, cleared in spans:
            active[min(raised, n) : min(cleared, n)] = True
        is_af, is_afl = _mask(r.afib, n), _mask(r.afl, n)
        minute = int(60 * fs)
        for m0 in range(0, n - minute + 1, minute):
            sl = slice(m0, m0 + minute)
            if is_afl[sl].mean() < 0.5:
                rows.append((t.name, bool(is_af[sl].mean() >= 0.5), bool(active[sl].mean() >= 0.5)))
        for a, b in r.episodes:
            hit = [raised for raised, _, cleared in spans if raised < b + off_s and cleared > a and raised < n]
            # an alarm still on from an earlier episode (AF continuing through flutter or a VT run) counts at 0 s
            episodes.append({"record": t.name, "start_s": round(a / fs, 1), "end_s": round(b / fs, 1),
                             "length_s": round((b - a) / fs, 1), "alarmed": bool(hit),
                             "raised_after_onset_s": round(max(min(hit) - a, 0) / fs, 1) if hit else None})
        any_af = _merge(r.afib + r.afl, off_s)
        for raised, onset, cleared in spans:
            if raised >= n:
                continue
            true = any(a < min(cleared, n) and b > onset for a, b in any_af)
            ended = [b for a, b in any_af if a <= raised <= b + off_s + int(60 * fs)]
            alarms.append({"record": t.name, "raised_s": round(raised / fs, 1), "cleared_s": round(min(cleared, n) / fs, 1),
                           "true": bool(true),
                           "cleared_relative_to_episode_end_s": round((cleared - ended[-1]) / fs, 1) if ended and cleared < n else None})
        per_record[t.name] = {"af_annotated": bool(r.afib or r.afl), "alarms": sum(raised < n for raised, _, _ in spans)}
    groups = np.array([x[0] for x in rows])
    truth = np.array([x[1] for x in rows], bool)
    minute = figures(truth, np.array([x[2] for x in rows], bool), groups)
    non_af = sorted(k for k, v in per_record.items() if not v["af_annotated"] and v["alarms"])
    return {"per_minute": minute, "episodes": episodes,
            "episode_se": round(float(np.mean([e["alarmed"] for e in episodes])), 4) if episodes else None,
            "alarms": alarms, "false_alarms": sum(not a["true"] for a in alarms),
            "non_af_records": sum(not v["af_annotated"] for v in per_record.values()),
            "non_af_records_with_alarm": non_af, "per_record": per_record}


def _mask(spans: list[tuple[int, int]], n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    for a, b in spans:
        m[max(a, 0) : min(b, n)] = True
    return m


def evaluate_wfdb(folder: Path, cache: Path | None = DEFAULT_CACHE, config: AnalyzerConfig | None = None,
                  model: AfModel | None = None, names: Sequence[str] | None = None, jobs: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> tuple[AfReport, AfModel]:
    """Per minute and per AF episode on WFDB records with ``(AFIB`` annotations, each record
    streamed whole. The per-recording model is the shipped one (fitted elsewhere); the bedside
    alarm threshold is chosen by leave-one-record-out cross-validation over this folder (and,
    for shipping, on all of it); the model file's own threshold is scored too, and, when this run
    selects another one (a refit that ``--write-model`` is about to ship), that one, in-sample."""
    heads = sorted(h for h in folder.glob("*.hea") if h.with_suffix(".atr").is_file())
    if names:
        heads = [h for h in heads if h.stem in set(names)]
    if not heads:
        raise InputError(folder, "no WFDB records with .atr annotations (and no REFERENCE.csv or ludb.csv)")
    cfg = (config or AnalyzerConfig()).af
    model = model or af.load_model(cfg.model_file)
    recs = []
    for hea, t in zip(heads, traces(heads, cache, config, progress, jobs)):
        spans = rhythm_spans(hea, t.n_samples)
        afib, afl = spans.get("(AFIB", []), spans.get("(AFL", [])
        recs.append(_Rec(hea, t, afib, afl, _merge(afib, int(cfg.offset_s * t.fs))))
    # per minute, the evidence itself (the per-recording operating point; nothing fitted here)
    ev_rows, dash_rows = [], []
    for r in recs:
        t = r.trace
        ev = evidence(t, model, cfg)
        is_af, is_afl = _mask(r.afib, t.n_samples), _mask(r.afl, t.n_samples)
        minute = int(60 * t.fs)
        for m0 in range(0, t.n_samples - minute + 1, minute):
            if is_afl[m0 : m0 + minute].mean() >= 0.5:
                continue
            inm = (t.index >= m0) & (t.index < m0 + minute)
            sel = inm & np.isfinite(ev)
            call = bool(sel.any() and np.mean(ev[sel] >= model.threshold) >= 0.5)
            truth = bool(is_af[m0 : m0 + minute].mean() >= 0.5)
            ev_rows.append((t.name, truth, call))
            dash_rows.append(dash_call(t.beat_rr[(t.beat_index >= m0) & (t.beat_index < m0 + minute)]))
    groups = np.array([x[0] for x in ev_rows])
    truth = np.array([x[1] for x in ev_rows], bool)
    evid = figures(truth, np.array([x[2] for x in ev_rows], bool), groups)
    dash = figures(truth, np.array(dash_rows, bool), groups)
    # the bedside alarm: leave-one-record-out choice of alarm_threshold, and the shipped one
    oof_events, oof_thr = {}, {}
    for r in recs:
        others = [o for o in recs if o is not r]
        thr = select_alarm_threshold(others, model, cfg) if others else model.alarm_threshold
        oof_thr[r.trace.name] = round(thr, 4)
        oof_events[r.trace.name] = replay(r.trace, dataclasses.replace(model, alarm_threshold=thr), cfg)
    oof = _score_alarms(recs, oof_events, cfg)
    shipped = _score_alarms(recs, {r.trace.name: replay(r.trace, model, cfg) for r in recs}, cfg)
    selected = dataclasses.replace(model, alarm_threshold=select_alarm_threshold(recs, model, cfg))
    rows = [("alarm, out of fold (leave-one-record-out)", oof),
            (f"alarm, the model file's threshold {model.alarm_threshold:.3f} (as this run found it)", shipped)]
    chosen = None
    if not math.isclose(selected.alarm_threshold, model.alarm_threshold, rel_tol=1e-6):
        # a refit (--write-model after a new per-recording model): the file's threshold is not the
        # one about to be written; score that one too, and say it is in-sample
        chosen = _score_alarms(recs, {r.trace.name: replay(r.trace, selected, cfg) for r in recs}, cfg)
        rows.append((f"alarm, threshold selected on all records {selected.alarm_threshold:.3f} (in-sample)", chosen))
    results = {
        "se": evid["se"], "sp": evid["sp"], "records": len(recs), "kind": "wfdb", "minutes": len(ev_rows),
        "per_minute_evidence": evid, "reference_dash2009_per_minute": dash,
        "alarm_out_of_fold": {**oof, "alarm_thresholds": oof_thr,
                              "cv": "leave-one-record-out: each record scored with the alarm threshold chosen on the others"},
        "alarm_shipped": {**shipped, "alarm_threshold": model.alarm_threshold},
        "alarm_threshold_selected_on_all": selected.alarm_threshold,
        "model": model.to_dict(), "per_recording_model_fitted_on_this_folder": False,
    }
    if chosen is not None:
        results["alarm_selected_in_sample"] = {**chosen, "alarm_threshold": selected.alarm_threshold}
    lines = [
        f"WFDB {folder.name}: {len(recs)} records streamed whole in 1 s blocks; {len(ev_rows)} minutes "
        f"(AF {int(truth.sum())}; flutter minutes left out); 95% record-bootstrap intervals",
        _row("per minute: AF evidence for most beats", evid),
        _row("per minute: reference Dash 2009 rule", dash),
    ]
    for label, res in rows:
        lines.append(_row(f"per minute: {label}", res["per_minute"]))
        lines.append(f"  AF episodes alarmed: {sum(e['alarmed'] for e in res['episodes'])}/{len(res['episodes'])}; "
                     f"alarms raised {len(res['alarms'])}, false {res['false_alarms']}; records without AF: "
                     f"{res['non_af_records']}, with an AF alarm: {res['non_af_records_with_alarm'] or 'none'}")
        for e in res["episodes"]:
            lines.append(f"    {e['record']} AF {e['start_s']:7.1f}-{e['end_s']:7.1f} s ({e['length_s']:6.1f} s): "
                         + (f"raised {e['raised_after_onset_s']:.1f} s after onset" if e["alarmed"] else "not alarmed"))
        for a in res["alarms"]:
            lines.append(f"    alarm {a['record']} raised {a['raised_s']:.1f} s, cleared {a['cleared_s']:.1f} s"
                         + ("" if a["true"] else "  FALSE")
                         + (f" ({a['cleared_relative_to_episode_end_s']:+.1f} s from the episode's end)" if a["cleared_relative_to_episode_end_s"] is not None else ""))
    lines.append(f"alarm threshold the procedure selects on all {len(recs)} records: {selected.alarm_threshold:.4f}")
    return AfReport("wfdb", results, lines), selected


def evaluate_af(folder: str | Path, cache: Path | None = DEFAULT_CACHE, folds: int = 10, seed: int = 0,
                limit: int | None = None, names: Sequence[str] | None = None, jobs: int = 1,
                config: AnalyzerConfig | None = None, progress: Callable[[int, int], None] | None = None
                ) -> tuple[AfReport, AfModel | None]:
    """Score the folder by what it holds: ``REFERENCE.csv`` (CinC 2017), ``ludb.csv`` (LUDB) or
    WFDB records with ``.atr`` rhythm annotations. Returns the report and the model the folder's
    selection procedure picks (None for LUDB, where nothing is selected)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    if (folder / "REFERENCE.csv").is_file():
        return evaluate_cinc(folder, cache, folds, seed, config, limit, jobs, progress)
    if (folder / "ludb.csv").is_file():
        return evaluate_ludb(folder, cache, config, None, jobs, progress), None
    return evaluate_wfdb(folder, cache, config, None, names, jobs, progress)


def model_file_payload(model: AfModel, kind: str, results: dict[str, Any]) -> dict[str, Any]:
    """What ``af_model.json`` holds: the model, how each part was selected, the data's attribution."""
    prov = dict(model.provenance)
    if kind == "cinc2017":
        prov["per_recording"] = (f"weights, entropy gate and threshold selected on all {results['records']} scored records "
                                 "(N, A, O) of the shared PhysioNet/CinC 2017 training set; out-of-fold figures of that "
                                 "procedure in docs/results/af-cinc2017.json")
        prov["per_recording_out_of_fold"] = {k: results[k] for k in ("se", "sp")}
    else:
        prov["alarm_threshold"] = (f"selected on all {results['records']} records of {kind} folder by the procedure whose "
                                   "leave-one-record-out figures are in the matching docs/results/af-*.json")
    prov["attribution"] = ("Derived from the PhysioNet/Computing in Cardiology Challenge 2017 training set and the MIT-BIH "
                           "Arrhythmia Database (ODC-By 1.0): Clifford et al., CinC 44, 2017; Moody & Mark, IEEE EMB "
                           "Magazine 20(3), 2001; Goldberger et al., Circulation 101(23), 2000.")
    return {"model": model.to_dict(), **prov}
