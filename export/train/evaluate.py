"""Evaluation: per-label AUROC/AUPRC with record-bootstrap intervals, operating points chosen on
validation, and record-grouped cross-validation (``edge-ecg eval model``)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from export.train.crossval import grouped_folds
from export.train.finetune import FinetuneConfig, finetune, predict, predict_logits
from export.train.metrics import (
    auprc, auprc_within, auroc, auroc_within, bootstrap, challenge_score, sens_spec, threshold_for_sensitivity, threshold_youden,
)

log = logging.getLogger(__name__)


def choose_threshold(y: np.ndarray, p: np.ndarray, min_sensitivity: float | None) -> float:
    """On validation: the threshold reaching ``min_sensitivity`` (alarm labels) or Youden's J."""
    known = ~np.isnan(y)
    y, p = y[known], p[known]
    if min_sensitivity is not None:
        return threshold_for_sensitivity(y, p, min_sensitivity)
    return threshold_youden(y, p)


def label_metrics(y: np.ndarray, p: np.ndarray, groups: np.ndarray, threshold: float | np.ndarray,
                  n_boot: int = 1000, seed: int = 0, folds: np.ndarray | None = None) -> dict:
    """AUROC, AUPRC (95% record-bootstrap intervals), sensitivity/specificity and the CinC score at
    ``threshold`` (a scalar, or one per window when pooled from folds with their own thresholds).

    With ``folds`` (out-of-fold scores of k models), AUROC/AUPRC count only within-fold
    comparisons (``metrics.auroc_within``); the naive pooled AUROC is kept as ``auroc_pooled``."""
    known = ~np.isnan(y)
    strata = np.zeros(len(y)) if folds is None else np.asarray(folds, dtype=np.float64)
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), y.shape)[known] if np.ndim(threshold) else threshold
    y, p, groups, strata = y[known].astype(bool), p[known], groups[known], strata[known]
    pred = p >= thr
    tpr = float((pred & y).sum() / y.sum()) if y.any() else float("nan")
    tnr = float((~pred & ~y).sum() / (~y).sum()) if (~y).any() else float("nan")
    ps = np.stack([np.asarray(p, dtype=np.float64), strata], axis=1)
    out = {
        "n": int(len(y)), "positives": int(y.sum()), "records": int(len(np.unique(groups))),
        "auroc": bootstrap(auroc_within, y, ps, groups, n_boot, seed).to_dict(),
        "auprc": bootstrap(auprc_within, y, ps, groups, n_boot, seed).to_dict(),
        "sensitivity": None if math.isnan(tpr) else round(tpr, 4),
        "specificity": None if math.isnan(tnr) else round(tnr, 4),
        "challenge_score": round(challenge_score(y, pred), 4),
    }
    if folds is not None and len(np.unique(strata)) > 1:
        a = auroc(y, p)
        out["auroc_pooled"] = None if math.isnan(a) else round(a, 4)
        per = {str(int(k)): auroc(y[strata == k], p[strata == k]) for k in np.unique(strata)}
        out["auroc_per_fold"] = {k: round(v, 4) for k, v in per.items() if not math.isnan(v)}  # TOML has no null
    return out


@dataclass
class CrossValResult:
    """Out-of-fold results of every evaluable window, with what each fold chose on its validation records."""

    folds: np.ndarray           # fold per window (-1 = training-only window)
    oof: np.ndarray             # (N, K) calibrated probabilities from the fold where the window was test; NaN elsewhere
    oof_threshold: np.ndarray   # (N, K) the default-rule threshold that fold chose on its validation split
    fold_thresholds: list       # per fold, per label (default rule)
    fold_models: dict = field(default_factory=dict)  # fold -> model (only the ones asked to keep)
    fold_splits: dict = field(default_factory=dict)  # fold -> (train_idx, val_idx, test_idx)
    seconds: float = 0.0
    oof_logit: np.ndarray | None = None               # (N, K) raw logits (NaN where not tested)
    calibrations: list = field(default_factory=list)  # per fold, per label: Platt dict (fitted on validation)
    rule_thresholds: list = field(default_factory=list)  # per fold: {rule: [threshold per label]} (calibrated)
    start: int | None = None                          # partial fine-tuning: first trained block


def cross_validate(inputs: np.ndarray, labels: np.ndarray, groups: np.ndarray, eval_mask: np.ndarray,
                   always_train: np.ndarray, k: int, cfg: FinetuneConfig, init=None,
                   min_sensitivity: Sequence[float | None] | None = None, keep_models: Sequence[int] = (0,),
                   seed: int = 0, only_folds: Sequence[int] | None = None, val_fraction: float = 0.2,
                   max_val_windows: int = 300, rules: Sequence[str] = ("youden", "sens90", "spec95"),
                   default_rules: Sequence[str] | None = None, calibration: str = "platt") -> CrossValResult:
    """Record-grouped k-fold: fold f is test; ``val_fraction`` of the other records is validation
    (early stopping, calibration, thresholds); the rest (plus ``always_train`` windows) training.
    Each evaluable window is tested exactly once, by a model that never saw its record.

    ``inputs`` are rendered images, or trunk tokens when ``cfg.train_blocks`` (partial
    fine-tuning). Per fold and label, a Platt calibration is fitted on the validation logits and
    every operating-point ``rule`` picks its threshold on the calibrated validation probabilities;
    the label's default threshold is ``default_rules[j]`` (``min_sensitivity`` overrides it with
    the old "keep this share of validation positives" rule).
    """
    import time

    from export.train.calibrate import fit_platt, rule_threshold

    n, kk = labels.shape
    min_sensitivity = list(min_sensitivity or [None] * kk)
    default_rules = list(default_rules or ["youden"] * kk)
    folds = fold_assignment(groups, labels, eval_mask, always_train, k, seed)
    oof = np.full((n, kk), np.nan, dtype=np.float32)
    oof_logit = np.full((n, kk), np.nan, dtype=np.float32)
    oof_thr = np.full((n, kk), np.nan, dtype=np.float32)
    result = CrossValResult(folds, oof, oof_thr, [], oof_logit=oof_logit)
    t0 = time.monotonic()
    for f in (only_folds if only_folds is not None else range(k)):
        train_idx, val_idx, test_idx = split_for_fold(folds, f, groups, labels, eval_mask, always_train, seed,
                                                      val_fraction, max_val_windows)
        log.info("fold %d/%d: %d train, %d validation, %d test windows", f + 1, k, len(train_idx), len(val_idx), len(test_idx))
        fcfg = FinetuneConfig(**{**cfg.__dict__, "seed": cfg.seed + f})
        res = finetune(inputs[train_idx], labels[train_idx], inputs[val_idx], labels[val_idx], fcfg, init,
                       desc=f"fold {f + 1}/{k}")
        result.start = res.start
        z_val = predict_logits(res.model, inputs[val_idx], start=res.start)
        z_test = predict_logits(res.model, inputs[test_idx], start=res.start)
        cals = [fit_platt(z_val[:, j], labels[val_idx, j], calibration) for j in range(kk)]
        p_val = np.stack([cals[j](z_val[:, j]) for j in range(kk)], axis=1)
        by_rule = {r: [rule_threshold(r, labels[val_idx, j], p_val[:, j]) for j in range(kk)] for r in rules}
        thr = []
        for j in range(kk):
            if min_sensitivity[j] is not None:
                thr.append(choose_threshold(labels[val_idx, j], p_val[:, j], min_sensitivity[j]))
            else:
                thr.append(by_rule[default_rules[j]][j] if default_rules[j] in by_rule
                           else rule_threshold(default_rules[j], labels[val_idx, j], p_val[:, j]))
        result.fold_thresholds.append(thr)
        result.calibrations.append([c.to_dict() for c in cals])
        result.rule_thresholds.append(by_rule)
        oof_logit[test_idx] = z_test
        oof[test_idx] = np.stack([cals[j](z_test[:, j]) for j in range(kk)], axis=1)
        oof_thr[test_idx] = np.asarray(thr, dtype=np.float32)
        result.fold_splits[f] = (train_idx, val_idx, test_idx)
        if f in keep_models:
            result.fold_models[f] = res.model
    result.seconds = time.monotonic() - t0
    return result


def fold_assignment(groups: np.ndarray, labels: np.ndarray, eval_mask: np.ndarray, always_train: np.ndarray,
                    k: int, seed: int) -> np.ndarray:
    """Fold per window (-1: training-only window); a pure function, so evaluation can rebuild it."""
    folds = np.full(len(groups), -1, dtype=np.int64)
    folds[eval_mask] = grouped_folds(groups[eval_mask], labels[eval_mask], k, seed)
    # training-only windows of a record that is also evaluated follow that record's fold
    fold_of_group = {g: f for g, f in zip(groups[eval_mask], folds[eval_mask])}
    for i in np.nonzero(~eval_mask & ~always_train)[0]:
        folds[i] = fold_of_group.get(groups[i], -1)
    return folds


def split_for_fold(folds, f, groups, labels, eval_mask, always_train, seed, val_fraction: float = 0.2,
                   max_val_windows: int = 300):
    """(train, validation, test) window indices of fold ``f``, exactly as ``cross_validate`` used them."""
    test_idx = np.nonzero((folds == f) & eval_mask)[0]
    val_idx, train_idx = _validation_split(folds, f, groups, labels, eval_mask, always_train, val_fraction,
                                           max_val_windows, seed + f)
    return train_idx, val_idx, test_idx


def _validation_split(folds, f, groups, labels, eval_mask, always_train, val_fraction, max_val_windows, seed):
    """(validation, training) window indices from the records outside test fold ``f``.

    Validation records are drawn like the folds (rarest label first, round-robin), so a rare
    label's records are spread; at most ``max_val_windows`` validation windows are kept (a random
    subset) because every evaluation during training runs over all of them.
    """
    rest = (folds != f) & (folds >= 0)
    cand = rest & eval_mask
    n_val_folds = max(2, int(round(1.0 / max(val_fraction, 1e-3))))
    sub = grouped_folds(groups[cand], labels[cand], n_val_folds, seed)
    val_groups = set(groups[cand][sub == 0])
    is_val = np.array([g in val_groups for g in groups]) & rest
    val_idx = np.nonzero(is_val & eval_mask)[0]
    if len(val_idx) > max_val_windows:
        val_idx = np.sort(np.random.default_rng(seed).choice(val_idx, max_val_windows, replace=False))
    train_idx = np.nonzero((rest & ~is_val) | always_train)[0]
    return val_idx, train_idx


def summarize_cv(cv: CrossValResult, labels: np.ndarray, groups: np.ndarray, names: Sequence[str],
                 n_boot: int = 1000) -> dict:
    """Pooled out-of-fold metrics per label (each window's decision uses its own fold's threshold)."""
    out = {}
    have = ~np.isnan(cv.oof[:, 0])
    for j, name in enumerate(names):
        out[name] = label_metrics(labels[have, j], cv.oof[have, j], groups[have], cv.oof_threshold[have, j], n_boot,
                                  folds=cv.folds[have])
    return out


def format_metrics(metrics: dict) -> str:
    """A plain-text table (one label per line) for the terminal and the README."""
    def iv(d):
        if d["value"] is None:
            return "n/a"
        lo = "?" if d["low"] is None else f"{d['low']:.3f}"
        hi = "?" if d["high"] is None else f"{d['high']:.3f}"
        return f"{d['value']:.3f} [{lo}, {hi}]"

    lines = [f"{'label':<24} {'n':>5} {'pos':>5} {'AUROC [95% CI]':>24} {'AUPRC [95% CI]':>24} {'sens':>6} {'spec':>6}"]
    for name, m in metrics.items():
        sens = "n/a" if m["sensitivity"] is None else f"{m['sensitivity']:.3f}"
        spec = "n/a" if m["specificity"] is None else f"{m['specificity']:.3f}"
        lines.append(f"{name:<24} {m['n']:>5} {m['positives']:>5} {iv(m['auroc']):>24} {iv(m['auprc']):>24} {sens:>6} {spec:>6}")
    return "\n".join(lines)
