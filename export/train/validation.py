"""What a bundle's labels are validated at: calibration error and operating points out of fold,
record-level figures (CinC 2017) and a held-out fold (PTB-XL fold 9), all with record-bootstrap
95% intervals. Everything here reads cross-validation results; nothing trains."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from export.train.calibrate import RULES, ece, pooled_sens_spec, reliability
from export.train.metrics import auroc, auroc_within, bootstrap


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def label_validation(cv, labels: np.ndarray, groups: np.ndarray, names: Sequence[str], n_boot: int = 1000) -> dict:
    """Per label: out-of-fold ECE of the calibrated probabilities (and of the raw sigmoid, the
    0.2 bundles' kind) and every operating-point rule's pooled sensitivity/specificity."""
    have = ~np.isnan(cv.oof[:, 0])
    folds = cv.folds[have]
    out = {}
    for j, name in enumerate(names):
        y, p, g = labels[have, j], cv.oof[have, j].astype(np.float64), groups[have]
        known = ~np.isnan(y)
        y, p, g, f = y[known], p[known], g[known], folds[known]
        raw = _sigmoid(cv.oof_logit[have, j][known].astype(np.float64)) if cv.oof_logit is not None else None
        cal = {"ece": bootstrap(lambda yy, pp: ece(yy, pp), y, p, g, n_boot).to_dict(),
               "method": cv.calibrations[0][j]["method"] if cv.calibrations else None,
               "fitted_on": "each fold's validation records; applied to its test records",
               "reliability": reliability(y, p)}
        if raw is not None:
            cal["ece_uncalibrated"] = bootstrap(lambda yy, pp: ece(yy, pp), y, raw, g, n_boot).to_dict()
        ops = {}
        for rule in (cv.rule_thresholds[0] if cv.rule_thresholds else {}):
            thr_by_fold = {fo: cv.rule_thresholds[i][rule][j] for i, fo in enumerate(_fold_ids(cv))}
            thr = np.array([thr_by_fold.get(int(fo), np.nan) for fo in f])
            ops[rule] = {"rule": RULES.get(rule, rule), **pooled_sens_spec(y, p >= thr, g, n_boot),
                         "thresholds_per_fold": [round(float(thr_by_fold[k]), 6) for k in sorted(thr_by_fold)]}
        out[name] = {"calibration": cal, "operating_points": ops}
    return out


def _fold_ids(cv) -> list[int]:
    """The folds in the order their results were appended (cross_validate runs them in order)."""
    return sorted(int(f) for f in cv.fold_splits) if cv.fold_splits else list(range(len(cv.rule_thresholds)))


def mean_auroc(y: np.ndarray, p: np.ndarray, groups: np.ndarray, folds: np.ndarray, n_boot: int = 1000) -> dict:
    """Mean over labels of the within-fold AUROC, with a 95% interval resampling records (labels
    without both classes in a resample are left out of that resample's mean)."""
    y = np.asarray(y, dtype=np.float64)

    def mean_auc(_, ii):
        ii = ii.astype(int)
        vals = []
        for j in range(y.shape[1]):
            known = ~np.isnan(y[ii, j])
            vals.append(auroc_within(y[ii, j][known], np.stack([p[ii, j], folds[ii]], axis=1)[known]))
        vals = [v for v in vals if not math.isnan(v)]
        return float(np.mean(vals)) if vals else float("nan")

    return bootstrap(mean_auc, np.zeros(len(y)), np.arange(len(y), dtype=float), groups, n_boot=n_boot).to_dict()


# --- CinC 2017: record-level classes --------------------------------------------------------------

def cinc2017_f1(truth: np.ndarray, pred: np.ndarray, classes: int = 4) -> dict:
    """Per-class F1 from the 4x4 confusion matrix (N, A, O, ~ order of ``truth``/``pred`` codes
    0..3) as the challenge scores it, and its score: the mean F1 of N, A and O."""
    cm = np.zeros((classes, classes))
    for t, q in zip(truth, pred):
        cm[int(t), int(q)] += 1
    f1 = [2 * cm[c, c] / (cm[c].sum() + cm[:, c].sum()) if cm[c].sum() + cm[:, c].sum() else float("nan")
          for c in range(classes)]
    return {"f1": f1, "score": float(np.nanmean(f1[:3]))}


def record_level_cinc2017(cv, windows, names: Sequence[str], n_boot: int = 1000) -> dict:
    """CinC 2017 records (groups ``cinc2017:*``): the mean of each record's window probabilities
    per class; class = argmax; AUROC(AF) within folds; F1 per class and the challenge score (mean
    F1 of N, A, O), all with record-bootstrap intervals. Also F1(AF) at each operating-point rule
    (the fold's window-level threshold applied to the record mean)."""
    order = ["normal", "af", "other_rhythm", "noise"]  # N, A, O, ~
    col = [list(names).index(c) for c in order]
    groups = windows.groups
    have = ~np.isnan(cv.oof[:, 0]) & np.char.startswith(groups.astype(str), "cinc2017:")
    recs, inv = np.unique(groups[have], return_inverse=True)
    p = cv.oof[have][:, col].astype(np.float64)
    y = windows.labels[have][:, col]
    fold = cv.folds[have]
    n = len(recs)
    pr = np.zeros((n, 4))
    np.add.at(pr, inv, p)
    pr /= np.bincount(inv, minlength=n)[:, None]
    truth = np.zeros(n, dtype=int)
    truth[inv] = np.argmax(y, axis=1)
    rec_fold = np.zeros(n, dtype=int)
    rec_fold[inv] = fold
    pred = np.argmax(pr, axis=1)
    idx = np.arange(n, dtype=float)

    def f1c(c):
        return lambda _, ii: cinc2017_f1(truth[ii.astype(int)], pred[ii.astype(int)])["f1"][c]

    out = {"records": int(n), "per_class": {o: int((truth == i).sum()) for i, o in enumerate(order)},
           "aggregation": "mean of the record's window probabilities (calibrated); class = argmax",
           "auroc_af": bootstrap(lambda _, ii: auroc_within((truth[ii.astype(int)] == 1),
                                                            np.stack([pr[ii.astype(int), 1], rec_fold[ii.astype(int)]], 1)),
                                 np.zeros(n), idx, None, n_boot).to_dict(),
           "f1": {o: bootstrap(f1c(i), np.zeros(n), idx, None, n_boot).to_dict() for i, o in enumerate(order)},
           "cinc2017_score": bootstrap(lambda _, ii: cinc2017_f1(truth[ii.astype(int)], pred[ii.astype(int)])["score"],
                                       np.zeros(n), idx, None, n_boot).to_dict()}
    j_af = list(names).index("af")
    rules = {}
    for rule in (cv.rule_thresholds[0] if cv.rule_thresholds else {}):
        thr_by_fold = {fo: cv.rule_thresholds[i][rule][j_af] for i, fo in enumerate(_fold_ids(cv))}
        dec = pr[:, 1] >= np.array([thr_by_fold[int(f)] for f in rec_fold])
        is_af = truth == 1

        def f1_af(_, ii, dec=dec):
            ii = ii.astype(int)
            tp = (dec[ii] & is_af[ii]).sum()
            d = dec[ii].sum() + is_af[ii].sum()
            return float(2 * tp / d) if d else float("nan")

        rules[rule] = {"f1_af": bootstrap(f1_af, np.zeros(n), idx, None, n_boot).to_dict(),
                       **pooled_sens_spec(is_af.astype(float), dec, recs, n_boot)}
    out["af_at_operating_points"] = rules
    return out


def holdout_metrics(y: np.ndarray, p: np.ndarray, groups: np.ndarray, names: Sequence[str], n_boot: int = 1000) -> dict:
    """AUROC per label and their macro mean on one held-out set (labels with both classes)."""
    per = {}
    for j, n in enumerate(names):
        known = ~np.isnan(y[:, j])
        per[n] = {"positives": int(np.nansum(y[:, j])),
                  "auroc": bootstrap(auroc, y[known, j], p[known, j], groups[known], n_boot).to_dict()}
    macro = mean_auroc(y, p, groups, np.zeros(len(y)), n_boot)
    return {"windows": int(len(y)), "records": int(len(np.unique(groups))), "macro_auroc": macro, "labels": per}
