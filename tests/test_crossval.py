"""Record-grouped cross-validation: a record is never on both sides of a fold, and the bootstrap
resamples whole records."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.errors import InputError
from edge_ecg.eval.crossval import bootstrap_interval, cross_validate, record_folds


def test_folds_never_put_one_record_on_both_sides_and_hold_each_out_once():
    # items of one record share its name: 30 records, several items each, duplicates in the list
    records = [f"r{i % 30}" for i in range(200)]
    strata = {f"r{i}": i % 4 == 0 for i in range(30)}
    folds = record_folds(records, k=5, seed=3, strata=strata)
    assert len(folds) == 5
    held = []
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert set(f.train) | set(f.test) == set(strata)
        held += f.test
    assert sorted(held) == sorted(strata)  # each record held out exactly once
    # stratified: every fold holds one or two of the 8 positive records
    assert all(1 <= sum(strata[r] for r in f.test) <= 2 for f in folds)


def test_cross_validate_fits_only_on_training_records():
    items = {f"r{i}": float(i) for i in range(20)}
    seen = []

    def fit(train):
        seen.append(set(train))
        return max(train.values())

    cv = cross_validate(items, fit, lambda p, x: (p, x), k=4, seed=0)
    for fold, train in zip(cv.folds, seen):
        assert train == set(fold.train)
        for r in fold.test:
            assert r not in train
            assert cv.predictions[r][0] == max(items[t] for t in fold.train)
    assert set(cv.predictions) == set(items)


def test_too_few_records_is_a_named_error():
    with pytest.raises(InputError, match="cannot fill"):
        record_folds(["a", "b", "a"], k=3)


def test_bootstrap_interval_brackets_the_statistic_and_narrows_with_more_records():
    rng = np.random.default_rng(0)
    small = {f"s{i}": bool(rng.random() < 0.7) for i in range(20)}
    big = {f"b{i}": bool(rng.random() < 0.7) for i in range(400)}
    lo_s, hi_s = bootstrap_interval(list(small), lambda pick: np.mean([small[r] for r in pick]), n=500)
    lo_b, hi_b = bootstrap_interval(list(big), lambda pick: np.mean([big[r] for r in pick]), n=500)
    assert lo_s <= np.mean(list(small.values())) <= hi_s
    assert hi_b - lo_b < hi_s - lo_s
