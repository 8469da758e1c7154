"""Record-grouped cross-validation and record bootstrap: how every tuned figure here is scored.

A detector parameter chosen on the records it is then scored on measures the fit, not the
detector. So each parameter is chosen inside ``record_folds``' training records and scored on
that fold's held-out records only; the pooled held-out decisions give the out-of-fold figure,
and ``bootstrap_interval`` resamples whole records for its 95% interval. A record (one patient's
recording) never appears on both sides of a fold: several items (alarms, beats, windows) of one
record travel together.

Shipping: the parameters that go into the code are those the same selection procedure picks on
all shared records; the out-of-fold figure is the estimate of how that procedure does on records
it never saw (the project owners check it on records held back from ``../shared``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Sequence, TypeVar

import numpy as np

from edge_ecg.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class Fold:
    """One split: the records a parameter is chosen on, and the records it is scored on."""

    index: int
    train: tuple[Hashable, ...]
    test: tuple[Hashable, ...]


def record_folds(
    records: Sequence[Hashable], k: int = 5, seed: int = 0, strata: Mapping[Hashable, Any] | None = None
) -> list[Fold]:
    """``k`` folds over distinct ``records``; each record is held out exactly once.

    ``strata`` (record -> label, e.g. true/false alarm) deals each label's records round-robin
    over the folds after a seeded shuffle, so every fold holds about the same share of each label.
    Duplicates in ``records`` are one record (its items stay on one side).
    """
    uniq = list(dict.fromkeys(records))
    if k < 2:
        raise InputError("record_folds", f"needs k >= 2 folds, got {k}")
    if len(uniq) < k:
        raise InputError("record_folds", f"{len(uniq)} records cannot fill {k} folds")
    rng = np.random.default_rng(seed)
    groups: dict[Any, list] = {}
    for r in uniq:
        groups.setdefault(None if strata is None else strata[r], []).append(r)
    fold_of: dict[Hashable, int] = {}
    offset = 0
    for key in sorted(groups, key=repr):
        members = groups[key]
        order = rng.permutation(len(members))
        for j, i in enumerate(order):
            fold_of[members[i]] = (j + offset) % k
        offset += len(members)  # the next label starts where this one stopped: balanced fold sizes
    folds = []
    for f in range(k):
        test = tuple(r for r in uniq if fold_of[r] == f)
        train = tuple(r for r in uniq if fold_of[r] != f)
        folds.append(Fold(f, train, test))
    return folds


@dataclass
class CrossValResult:
    """Out-of-fold predictions per record and the parameters each fold chose."""

    predictions: dict[Hashable, Any]
    chosen: list[Any]
    folds: list[Fold]


def cross_validate(
    items: Mapping[Hashable, T],
    fit: Callable[[Mapping[Hashable, T]], Any],
    predict: Callable[[Any, T], Any],
    k: int = 5,
    seed: int = 0,
    strata: Mapping[Hashable, Any] | None = None,
) -> CrossValResult:
    """For each fold: ``params = fit(training records' items)``, then ``predict(params, item)`` for
    each held-out record. ``items`` maps record -> whatever ``fit``/``predict`` need (cached
    features); nothing of a held-out record reaches ``fit``."""
    folds = record_folds(list(items), k, seed, strata)
    preds: dict[Hashable, Any] = {}
    chosen = []
    for fold in folds:
        train = {r: items[r] for r in fold.train}
        params = fit(train)
        chosen.append(params)
        for r in fold.test:
            preds[r] = predict(params, items[r])
    return CrossValResult(preds, chosen, folds)


def bootstrap_interval(
    records: Sequence[Hashable],
    statistic: Callable[[Sequence[Hashable]], float],
    n: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``n`` resamples of whole records (with
    replacement). Resamples where the statistic is undefined (NaN) are dropped."""
    recs = list(records)
    if not recs:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = [recs[i] for i in rng.integers(0, len(recs), len(recs))]
        v = statistic(pick)
        if v == v:  # not NaN
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(vals, [a, 1.0 - a])
    return float(lo), float(hi)
