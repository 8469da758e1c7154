"""Record-grouped folds: no record has windows on two sides of a split."""

from __future__ import annotations

import numpy as np


def grouped_folds(groups: np.ndarray, labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number (0..k-1) per window, constant within a group.

    Groups are dealt round-robin after sorting by their rarest positive label, so records that
    carry a rare label (AF is in two MIT-BIH DS1 records) land in different folds, like a
    stratified group k-fold.
    """
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    prevalence = np.nansum(labels, axis=0) if labels.size else np.zeros(0)
    keys = []
    for g in uniq:
        sel = groups == g
        pos = np.nansum(labels[sel], axis=0) > 0 if labels.size else np.zeros(0, bool)
        rarest = float(np.min(prevalence[pos])) if pos.any() else float("inf")
        keys.append((rarest, rng.random()))
    order = sorted(range(len(uniq)), key=lambda i: keys[i])
    fold_of = {uniq[i]: j % k for j, i in enumerate(order)}
    return np.asarray([fold_of[g] for g in groups], dtype=np.int64)
