"""Classification metrics with bootstrap confidence intervals, and operating points.

scikit-learn is not a dependency of the factory (and not installed here); AUROC comes from
scipy's rank statistics (the Mann-Whitney U identity) and average precision is the step-wise
sum that scikit-learn's ``average_precision_score`` computes, written out in a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np
from scipy.stats import rankdata


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present (it is undefined then)."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auprc(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise); NaN without positives."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y[order]
    # group ties: precision/recall are evaluated at each distinct threshold
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(t)[distinct]
    fp = (distinct + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def _strata_split(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``score`` is (N,) or (N, 2) = (score, stratum); the second column lets ``bootstrap`` resample
    records while the metric still knows each window's fold."""
    score = np.asarray(score, dtype=np.float64)
    if score.ndim == 2:
        return score[:, 0], score[:, 1]
    return score, np.zeros(len(score))


def auroc_within(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC over the (positive, negative) pairs that share a stratum (cross-validation fold).

    Out-of-fold scores come from k different models whose outputs are not calibrated to each
    other; pooling them into one ranking compares fold A's model with fold B's, and a fold whose
    model outputs higher probabilities *and* whose test records hold fewer positives drags the
    pooled AUROC below 0.5 even when every fold ranks its own windows well (measured on the first
    ``rhythm`` run: per-fold ventricular_run AUROC 0.73-0.90, pooled 0.45). Counting only
    within-fold pairs is the pair-weighted mean of the per-fold AUROCs. ``score`` is (N, 2) =
    (score, fold) or (N,) for one stratum (then it is plain AUROC).
    """
    return _weighted_within(auroc, y, score, lambda pos, neg: pos * neg)


def auprc_within(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision per stratum (fold), averaged with weights = positives (see ``auroc_within``)."""
    return _weighted_within(auprc, y, score, lambda pos, neg: pos)


def _weighted_within(metric, y: np.ndarray, score: np.ndarray, weight) -> float:
    """``metric`` per stratum (fold), averaged with ``weight(positives, negatives)`` per stratum."""
    y = np.asarray(y).astype(bool)
    s, strata = _strata_split(score)
    num = den = 0.0
    for k in np.unique(strata):
        sel = strata == k
        value = metric(y[sel], s[sel])
        if not np.isnan(value):
            w = weight(float(y[sel].sum()), float((~y[sel]).sum()))
            num, den = num + value * w, den + w
    return num / den if den else float("nan")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap 95% interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        if np.isnan(self.value):
            return "n/a"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict:
        return {k: (None if np.isnan(v) else round(float(v), 4)) for k, v in asdict(self).items()}


def bootstrap(metric, y: np.ndarray, score: np.ndarray, groups: np.ndarray | None = None,
              n_boot: int = 1000, seed: int = 0) -> Interval:
    """``metric(y, score)`` with a 95% percentile interval.

    Windows of one record are correlated, so when ``groups`` is given the bootstrap resamples
    whole groups (records), not windows: resampling windows would make intervals too narrow.
    """
    y = np.asarray(y)
    score = np.asarray(score)
    value = metric(y, score)
    rng = np.random.default_rng(seed)
    if groups is None:
        idx_by_group = [np.array([i]) for i in range(len(y))]
    else:
        groups = np.asarray(groups)
        idx_by_group = [np.nonzero(groups == g)[0] for g in np.unique(groups)]
    n = len(idx_by_group)
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        idx = np.concatenate([idx_by_group[i] for i in pick])
        v = metric(y[idx], score[idx])
        if not np.isnan(v):
            stats.append(v)
    if len(stats) < n_boot // 10:
        return Interval(value, float("nan"), float("nan"))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return Interval(float(value), float(lo), float(hi))


def sens_spec(y: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity (TPR) and specificity (TNR) of ``score >= threshold``."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(score) >= threshold
    tpr = float((pred & y).sum() / y.sum()) if y.any() else float("nan")
    tnr = float((~pred & ~y).sum() / (~y).sum()) if (~y).any() else float("nan")
    return tpr, tnr


def challenge_score(y: np.ndarray, pred: np.ndarray) -> float:
    """PhysioNet/CinC 2015 score (TP+TN)/(TP+TN+FP+5*FN): a missed true alarm costs five false ones."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(pred).astype(bool)
    tp = int((pred & y).sum())
    tn = int((~pred & ~y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    den = tp + tn + fp + 5 * fn
    return float((tp + tn) / den) if den else float("nan")


def threshold_for_sensitivity(y: np.ndarray, score: np.ndarray, min_tpr: float) -> float:
    """A threshold whose sensitivity on (y, score) is at least ``min_tpr``, as high as that allows.

    Used on validation data for alarm-style labels, where a miss costs more than a false alarm.
    The threshold sits midway between the lowest positive that must be caught and the next lower
    score, not on that positive's score: on new data a true alarm scoring a hair below the
    validation's weakest one is then still caught, at no cost on validation.
    """
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    pos = np.sort(score[y])
    if len(pos) == 0:
        return 0.5
    k = int(np.floor((1.0 - min_tpr) * len(pos) + 1e-9))  # positives we may miss
    t = float(pos[min(k, len(pos) - 1)])
    below = score[score < t]
    return (t + float(below.max())) / 2 if len(below) else t


def threshold_youden(y: np.ndarray, score: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1 (Youden's J) on (y, score)."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    if not y.any() or y.all():
        return 0.5
    cands = np.unique(score)
    best, best_t = -1.0, 0.5
    for t in cands:
        tpr, tnr = sens_spec(y, score, t)
        if tpr + tnr - 1 > best:
            best, best_t = tpr + tnr - 1, float(t)
    return best_t
