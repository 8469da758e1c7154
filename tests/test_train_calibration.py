"""Calibration (Platt/temperature fitted on validation), ECE, operating-point rules, CinC 2017 F1,
and partial fine-tuning on cached trunk tokens (the model it trains is an ordinary HeartBEiT)."""

from __future__ import annotations

import numpy as np
import pytest

from export.train.calibrate import (
    ece, fit_platt, pooled_sens_spec, rule_threshold, threshold_for_specificity,
)
from export.train.validation import cinc2017_f1


def _sample(a, b, n=20000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * z + b)))).astype(float)
    return z, y


def test_platt_recovers_scale_and_bias_and_temperature_has_no_bias():
    z, y = _sample(0.5, -2.0)
    cal = fit_platt(z, y)
    assert abs(cal.scale - 0.5) < 0.05 and abs(cal.bias + 2.0) < 0.1
    t = fit_platt(z, y, method="temperature")
    assert t.bias == 0.0 and t.method == "temperature"
    # calibrating the class-weighted kind of logit (shifted up) removes most of the error
    raw = 1 / (1 + np.exp(-z))
    assert ece(y, cal(z)) < 0.02 < ece(y, raw)


def test_platt_with_one_class_returns_the_base_rate_not_a_blow_up():
    cal = fit_platt(np.linspace(-3, 3, 50), np.zeros(50))
    assert 0 < cal(np.array([10.0]))[0] < 0.05 and np.isfinite([cal.scale, cal.bias]).all()
    cal = fit_platt(np.array([1.0, 2.0, np.nan]), np.array([np.nan, 1.0, 0.0]))  # NaNs are ignored
    assert np.isfinite([cal.scale, cal.bias]).all()


def test_ece_is_zero_for_matching_rates_and_counts_the_gap():
    y = np.array([0, 0, 0, 1] * 25, dtype=float)
    assert ece(y, np.full(100, 0.25)) == pytest.approx(0.0)
    assert ece(y, np.full(100, 0.75)) == pytest.approx(0.5)


def test_specificity_rule_keeps_the_floor_on_its_own_data_and_is_the_lowest_such():
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.2
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    t = threshold_for_specificity(y, p, 0.95)
    spec = ((p < t) & ~y).sum() / (~y).sum()
    assert spec >= 0.95
    neg = np.sort(p[~y])
    lower = neg[neg < t]
    assert ((p < lower.max()) & ~y).sum() / (~y).sum() < 0.95  # one step lower breaks the floor
    assert rule_threshold("spec95", y.astype(float), p) == t
    assert rule_threshold("sens90", y.astype(float), p) <= np.sort(p[y])[int(0.1 * y.sum())]


def test_pooled_sens_spec_counts_and_intervals():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    pred = np.array([1, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    r = pooled_sens_spec(y, pred, np.arange(8), n_boot=200)
    assert (r["TP"], r["FN"], r["FP"], r["TN"]) == (2, 1, 1, 4)
    assert r["sensitivity"]["value"] == pytest.approx(2 / 3, abs=1e-4) and r["specificity"]["value"] == pytest.approx(0.8)
    assert r["sensitivity"]["low"] <= 2 / 3 <= r["sensitivity"]["high"]


def test_cinc2017_score_is_the_mean_f1_of_n_a_o():
    truth = np.array([0, 0, 1, 1, 2, 3])
    pred = np.array([0, 1, 1, 1, 0, 3])
    out = cinc2017_f1(truth, pred)
    assert out["f1"][0] == pytest.approx(2 * 1 / (2 + 2))        # N: row 2, column 2
    assert out["f1"][1] == pytest.approx(2 * 2 / (2 + 3))        # A
    assert out["f1"][2] == 0.0 and out["f1"][3] == 1.0
    assert out["score"] == pytest.approx(np.mean(out["f1"][:3]))


def test_partial_finetuning_on_trunk_tokens_gives_a_plain_heartbeit(tmp_path):
    torch = pytest.importorskip("torch")
    from export.train.finetune import FinetuneConfig, finetune, predict_logits
    from export.train.trunk import Backbone, trunk_tokens

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = (255 - rng.integers(0, 2, (12, 32, 32), dtype=np.uint8) * 255).astype(np.uint8)  # black/white pixels
    labels = np.array([[1.0], [0.0]] * 6, dtype=np.float32)
    backbone = Backbone(None, "tiny", 32, seed=3)
    tokens = trunk_tokens(backbone, images, 5, cache_dir=tmp_path, threads=1)
    assert tokens.shape == (12, 1 + 4, 192) and tokens.dtype == np.float32
    again = trunk_tokens(backbone, images, 5, cache_dir=tmp_path, threads=1)
    assert isinstance(again, np.memmap)  # the second call reads the cache
    cfg = FinetuneConfig(size="tiny", img_size=32, steps=2, batch_size=4, eval_every=1, threads=1, train_blocks=1,
                         device="cpu")
    res = finetune(tokens[:8], labels[:8], tokens[8:], labels[8:], cfg, backbone)
    assert res.start == 5
    z_tokens = predict_logits(res.model, tokens[8:], start=res.start)
    z_images = predict_logits(res.model, images[8:])  # the exported path: images through every block
    assert np.allclose(z_tokens, z_images, atol=1e-4)
    frozen = backbone.build(1)
    assert torch.equal(frozen.blocks[0].attn.qkv.weight, res.model.blocks[0].attn.qkv.weight)  # the trunk did not move
    assert not torch.equal(frozen.blocks[5].mlp.fc1.weight, res.model.blocks[5].mlp.fc1.weight)
    # head_only (the CPU build's configs): block 6 runs frozen too, only fc_norm + head train
    cfg_head = FinetuneConfig(**{**cfg.__dict__, "head_only": True})
    res = finetune(tokens[:8], labels[:8], tokens[8:], labels[8:], cfg_head, backbone)
    assert res.start == 5 and res.best_step >= 1
    assert torch.equal(frozen.blocks[5].mlp.fc1.weight, res.model.blocks[5].mlp.fc1.weight)
    assert not torch.equal(frozen.head.weight, res.model.head.weight)
    assert np.allclose(predict_logits(res.model, tokens[8:], start=5), predict_logits(res.model, images[8:]), atol=1e-4)
