"""Calibrated probabilities and validated operating points, fitted on validation records only.

Training weights positives by neg/pos (the labels are rare), which shifts every logit up: the
raw sigmoid then overstates risk (the 0.2 bundles' thresholds sat at 0.0003-0.05). Per label,
Platt scaling (``sigmoid(a * logit + b)``: temperature scaling plus the bias term that undoes the
class weighting) is fitted by maximum likelihood on each fold's *validation* records and applied
to its test records, so the out-of-fold probabilities, their expected calibration error and
every operating point are measured on records neither the model nor its calibration saw.

Operating points are rules applied to the calibrated validation probabilities of each fold
(Youden's J; the highest threshold keeping sensitivity >= x; the lowest keeping specificity
>= y); their sensitivity and specificity are then pooled over the folds' test records, with
95% intervals from a bootstrap over records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from export.train.metrics import bootstrap, threshold_for_sensitivity, threshold_youden


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass(frozen=True)
class Platt:
    """``p = sigmoid(scale * logit + bias)``; ``method`` says which parameters were fitted."""

    scale: float = 1.0
    bias: float = 0.0
    method: str = "platt"

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return _sigmoid(self.scale * np.asarray(logits, dtype=np.float64) + self.bias)

    def to_dict(self) -> dict:
        return {"method": self.method, "scale": round(float(self.scale), 6), "bias": round(float(self.bias), 6)}


def fit_platt(logits: np.ndarray, y: np.ndarray, method: str = "platt", l2: float = 1e-3) -> Platt:
    """Maximum-likelihood Platt (or temperature) scaling; a small ridge keeps it finite when the
    validation split separates perfectly. NaN labels are ignored; one class only -> the prior."""
    from scipy.optimize import minimize

    z = np.asarray(logits, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    known = ~np.isnan(yy) & np.isfinite(z)
    z, yy = z[known], yy[known]
    if len(yy) == 0 or yy.min() == yy.max():
        prior = (yy.sum() + 0.5) / (len(yy) + 1.0)  # no ranking to calibrate: the (smoothed) base rate
        return Platt(1e-3, float(math.log(prior / (1 - prior))), method)

    def nll(params):
        a, b = (params[0], params[1]) if method == "platt" else (params[0], 0.0)
        t = a * z + b
        loss = np.logaddexp(0, t) - yy * t
        sig = _sigmoid(t)
        ga = np.mean((sig - yy) * z) + l2 * (a - 1.0)
        gb = np.mean(sig - yy)
        val = loss.mean() + 0.5 * l2 * (a - 1.0) ** 2
        return val, (np.array([ga, gb]) if method == "platt" else np.array([ga]))

    x0 = np.array([1.0, 0.0]) if method == "platt" else np.array([1.0])
    res = minimize(nll, x0, jac=True, method="L-BFGS-B",
                   bounds=[(1e-3, 100.0)] + ([(-50.0, 50.0)] if method == "platt" else []))
    a = float(res.x[0])
    b = float(res.x[1]) if method == "platt" else 0.0
    return Platt(a, b, method)


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the bin-size-weighted mean |observed rate - mean probability|
    over ``bins`` equal-width probability bins."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    known = ~np.isnan(y)
    y, p = y[known], p[known]
    if len(y) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(y[sel].mean() - p[sel].mean())
    return float(total / len(y))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Per bin: windows, mean probability, observed rate (for a reliability plot or table)."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    known = ~np.isnan(y)
    y, p = y[known], p[known]
    idx = np.minimum((p * bins).astype(int), bins - 1)
    return [{"bin": [b / bins, (b + 1) / bins], "n": int((idx == b).sum()),
             "mean_p": round(float(p[idx == b].mean()), 4), "observed": round(float(y[idx == b].mean()), 4)}
            for b in range(bins) if (idx == b).any()]


# --- operating points -----------------------------------------------------------------------------

RULES = {
    "youden": "Youden's J on the fold's validation records",
    "sens90": "highest threshold keeping validation sensitivity >= 0.90",
    "spec95": "lowest threshold keeping validation specificity >= 0.95",
    "spec99": "lowest threshold keeping validation specificity >= 0.99",
}


def threshold_for_specificity(y: np.ndarray, p: np.ndarray, min_spec: float) -> float:
    """The lowest threshold whose specificity on (y, p) is at least ``min_spec``, placed midway to
    the next lower score (so a negative exactly at the threshold is not a near-tie)."""
    y = np.asarray(y).astype(bool)
    neg = np.sort(np.asarray(p, dtype=np.float64)[~y])
    if len(neg) == 0:
        return 0.5
    k = int(math.ceil(min_spec * len(neg)))  # negatives that must fall below the threshold
    if k >= len(neg):
        return float(min(1.0, neg[-1] + 1e-6))
    lo, hi = neg[k - 1] if k > 0 else neg[0] - 1e-6, neg[k]
    return float((lo + hi) / 2) if hi > lo else float(np.nextafter(hi, np.inf))


def rule_threshold(rule: str, y: np.ndarray, p: np.ndarray) -> float:
    """The threshold ``rule`` picks on validation (y, p); NaN labels ignored."""
    known = ~np.isnan(np.asarray(y, dtype=np.float64))
    y, p = np.asarray(y)[known].astype(bool), np.asarray(p, dtype=np.float64)[known]
    if rule == "youden":
        return threshold_youden(y, p)
    if rule == "sens90":
        return threshold_for_sensitivity(y, p, 0.90)
    if rule.startswith("spec"):
        return threshold_for_specificity(y, p, int(rule[4:]) / 100.0)
    raise ValueError(f"unknown operating-point rule {rule!r} (known: {', '.join(RULES)})")


def _sens(y, pred):
    y = np.asarray(y).astype(bool)
    return float((pred[y]).mean()) if y.any() else float("nan")


def _spec(y, pred):
    y = np.asarray(y).astype(bool)
    return float((~pred[~y]).mean()) if (~y).any() else float("nan")


def pooled_sens_spec(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Sensitivity and specificity of boolean decisions with 95% record-bootstrap intervals."""
    known = ~np.isnan(np.asarray(y, dtype=np.float64))
    y, pred, groups = np.asarray(y)[known].astype(bool), np.asarray(pred)[known].astype(bool), np.asarray(groups)[known]
    se = bootstrap(lambda yy, pp: _sens(yy, pp.astype(bool)), y, pred, groups, n_boot, seed).to_dict()
    sp = bootstrap(lambda yy, pp: _spec(yy, pp.astype(bool)), y, pred, groups, n_boot, seed).to_dict()
    tp, fn = int((pred & y).sum()), int((~pred & y).sum())
    fp, tn = int((pred & ~y).sum()), int((~pred & ~y).sum())
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    return {"sensitivity": se, "specificity": sp, "TP": tp, "FN": fn, "FP": fp, "TN": tn,
            "ppv": None if math.isnan(ppv) else round(ppv, 4)}
