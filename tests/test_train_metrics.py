"""Metrics against their definitions, and BEiT blockwise masking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from export.train.masking import block_mask
from export.train.metrics import (
    auprc, auroc, bootstrap, challenge_score, sens_spec, threshold_for_sensitivity,
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=40))
def test_auroc_is_the_pairwise_probability(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float)
    if y.all() or not y.any():
        assert np.isnan(auroc(y, s))
        return
    pos, neg = s[y], s[~y]
    brute = np.mean([(a > b) + 0.5 * (a == b) for a, b in itertools.product(pos, neg)])
    assert abs(auroc(y, s) - brute) < 1e-12


def test_auprc_known_values():
    assert auprc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    # ranking P N P: AP = (1/2)*1 + (1/2)*(2/3)
    assert abs(auprc(np.array([1, 0, 1]), np.array([0.9, 0.5, 0.1])) - (0.5 + 1 / 3)) < 1e-12


def test_bootstrap_interval_contains_the_estimate_and_uses_groups():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    s = y + rng.normal(0, 1.0, 400)
    iv = bootstrap(auroc, y, s, n_boot=200)
    assert iv.low <= iv.value <= iv.high and iv.high - iv.low < 0.2
    # 10 records of 40 identical windows each: only 10 independent units, so the record
    # bootstrap must give a wider interval than the (wrong) window bootstrap
    yg = np.array([0, 1] * 5)
    sg = yg * 0.8 + rng.normal(0, 1.0, 10)
    groups = np.repeat(np.arange(10), 40)
    y2, s2 = np.repeat(yg, 40), np.repeat(sg, 40)
    ivw = bootstrap(auroc, y2, s2, n_boot=200)
    ivg = bootstrap(auroc, y2, s2, groups, n_boot=200)
    assert (ivg.high - ivg.low) > 2 * (ivw.high - ivw.low)


def test_threshold_for_sensitivity_reaches_the_target():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300).astype(bool)
    s = y * 0.5 + rng.random(300)
    for target in (0.8, 0.95, 1.0):
        t = threshold_for_sensitivity(y, s, target)
        assert sens_spec(y, s, t)[0] >= target
        assert not np.any(s == t)  # between scores, never on one


def test_threshold_for_sensitivity_sits_midway_below_the_weakest_caught_positive():
    y = np.array([1, 1, 0, 0, 1])
    s = np.array([0.9, 0.6, 0.2, 0.7, 0.5])
    assert threshold_for_sensitivity(y, s, 1.0) == pytest.approx((0.5 + 0.2) / 2)
    assert threshold_for_sensitivity(y, s, 0.6) == pytest.approx((0.6 + 0.5) / 2)


def test_challenge_score_weights_misses_five_times():
    y = np.array([1, 1, 0, 0])
    assert challenge_score(y, np.array([1, 1, 0, 0])) == 1.0
    assert challenge_score(y, np.array([0, 1, 0, 0])) == 3 / (3 + 5)
    assert challenge_score(y, np.array([1, 1, 1, 0])) == 3 / 4


def test_block_mask_ratio_and_blocks():
    rng = np.random.default_rng(0)
    for grid in ((8, 8), (14, 14)):
        m = block_mask(grid, 0.4, rng)
        assert m.sum() == round(0.4 * grid[0] * grid[1])
    # blockwise: masked patches mostly have a masked 4-neighbour (random masking would not)
    m = block_mask((14, 14), 0.4, np.random.default_rng(3))
    pad = np.pad(m, 1)
    neigh = pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]
    assert (neigh[m]).mean() > 0.8
    assert np.array_equal(block_mask((8, 8), 0.4, np.random.default_rng(5)), block_mask((8, 8), 0.4, np.random.default_rng(5)))


def test_int8_agreement_counts_flips_at_the_thresholds():
    from export.train.build import agreement

    fp32 = np.array([[2.0, -1.0], [0.1, -1.0], [-3.0, 1.0]])
    int8 = np.array([[2.0, -1.0], [-0.1, -1.0], [-3.0, 0.5]])
    a = agreement(fp32, int8, np.array([0.5, 0.5]))
    assert a["top_label_agreement"] == 1.0  # argmax unchanged everywhere
    assert abs(a["decision_agreement"] - 2 / 3) < 1e-4  # row 1 flips label 0 across p = 0.5
    one = agreement(fp32[:, :1], int8[:, :1], np.array([0.5]))
    assert one["top_label_agreement"] == one["decision_agreement"]


def test_label_subset_keeps_a_positive_of_every_label():
    from export.train.lowlabel import label_subset

    rng = np.random.default_rng(0)
    labels = (rng.random((500, 3)) < [0.3, 0.05, 0.01]).astype(np.float32)
    train_idx = np.arange(100, 500)
    sub = label_subset(train_idx, labels, 0.01, seed=0)
    assert len(sub) == 4 and set(sub) <= set(train_idx)
    for j in range(3):
        if labels[train_idx, j].any():
            assert labels[sub, j].any()
    assert np.array_equal(label_subset(train_idx, labels, 1.0, 0), train_idx)


def test_within_fold_auroc_is_immune_to_uncalibrated_fold_models():
    """Regression for the first demo bundles' "below chance" AUROCs: each fold's model ranks its own
    test windows perfectly, but the fold with more positives has a model that outputs lower
    probabilities. Pooling the k models into one ranking gives AUROC < 0.5; comparing only
    windows of the same fold gives 1.0."""
    from export.train.metrics import auprc_within, auroc_within

    y = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.12, 0.11, 0.13, 0.10, 0.92, 0.90, 0.91, 0.905])
    assert auroc(y, p) < 0.5
    both = np.stack([p, fold], axis=1)
    assert auroc_within(y, both) == pytest.approx(1.0)
    assert auprc_within(y, both) == pytest.approx(1.0)
    assert auroc_within(y, p) == pytest.approx(auroc(y, p))  # one stratum: plain AUROC
    # pair-weighted: fold 0 has 3x1 pairs (all right), a worse fold 1 with 1x3 pairs (all wrong)
    p2 = p.copy()
    p2[4] = 0.80
    assert auroc_within(y, np.stack([p2, fold], axis=1)) == pytest.approx(0.5)


def test_label_metrics_reports_within_fold_and_pooled_auroc():
    from export.train.evaluate import label_metrics

    y = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=np.float32)
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.12, 0.11, 0.13, 0.10, 0.92, 0.90, 0.91, 0.905])
    groups = np.array([f"r{i}" for i in range(8)])
    m = label_metrics(y, p, groups, 0.5, n_boot=50, folds=fold)
    assert m["auroc"]["value"] == pytest.approx(1.0)
    assert m["auroc_pooled"] < 0.5 and m["auroc_per_fold"] == {"0": 1.0, "1": 1.0}
