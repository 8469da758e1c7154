"""A linear probe of a frozen backbone on a bundle's task: what resolution and pretraining put into
the representation, at the cost of one forward pass per image (``edge-ecg train probe``).

The same record-grouped folds as the bundle's cross-validation; per fold and label a
logistic regression on the standardised pooled features, its L2 strength chosen on the fold's
validation records; mean within-fold AUROC over labels with a record-bootstrap 95% interval.
Used to measure what 128 px costs against HeartBEiT's 224 px with everything else equal.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def probe_task(config_path: str | Path, img_size: int | None = None, init: str = "random", n_boot: int = 500) -> dict:
    from edge_ecg.render import RenderSpec
    from export.datasets.cache import rendered
    from export.models.heartbeit import CONFIGS
    from export.train.config import load_config
    from export.train.evaluate import fold_assignment, split_for_fold
    from export.train.lowlabel_af import linear_probe
    from export.train.metrics import auroc
    from export.train.tasks import build_task, shared_root
    from export.train.trunk import Backbone, pooled_features, trunk_tokens
    from export.train.validation import mean_auroc

    cfg = load_config(config_path)
    data, ft = cfg["data"], cfg.get("finetune", {})
    spec_d = dict(cfg["render"])
    if img_size:
        spec_d.update(width=int(img_size), height=int(img_size))
    spec = RenderSpec.from_dict(spec_d)
    td = build_task(str(data["task"]), shared_root(data.get("shared")), float(data.get("window_s", 10.0)),
                    int(data.get("per_record", 2)))
    t0 = time.monotonic()
    images = rendered(td.windows, spec, Path(".cache/windows"), leads=td.leads)
    size = ft.get("size", "tiny")
    backbone = Backbone(cfg["init"]["pretrained"] if init == "pretrained" else None, size, spec.width, 0)
    depth = CONFIGS[size].depth
    feats = pooled_features(backbone, trunk_tokens(backbone, images, depth - 1), depth - 1)
    t_feat = time.monotonic() - t0
    labels, groups = td.windows.labels, td.windows.groups
    k, seed = int(cfg.get("eval", {}).get("folds", 4)), int(ft.get("seed", 0))
    folds = fold_assignment(groups, labels, td.eval_mask, td.always_train, k, seed)
    p = np.full(labels.shape, np.nan)
    for f in range(k):
        tr, va, te = split_for_fold(folds, f, groups, labels, td.eval_mask, td.always_train, seed,
                                    max_val_windows=int(cfg.get("eval", {}).get("max_val_windows", 300)))
        for j in range(labels.shape[1]):
            ktr, kva = ~np.isnan(labels[tr, j]), ~np.isnan(labels[va, j])
            if len(np.unique(labels[tr, j][ktr])) < 2 or len(np.unique(labels[va, j][kva])) < 2:
                continue
            p[te, j], _ = linear_probe(feats[tr][ktr], labels[tr, j][ktr], feats[va][kva], labels[va, j][kva], feats[te])
    have = ~np.isnan(p).all(axis=1)
    per = {}
    for j, n in enumerate(td.windows.label_names):
        sel = have & ~np.isnan(labels[:, j]) & ~np.isnan(p[:, j])
        per[n] = round(auroc(labels[sel, j], p[sel, j]), 4) if sel.any() else None
    return {"task": data["task"], "img_size": spec.width, "init": init, "backbone": backbone.identity(),
            "windows": int(len(images)), "folds": k,
            "mean_auroc": mean_auroc(labels[have], np.nan_to_num(p[have], nan=0.0), groups[have], folds[have], n_boot),
            "auroc_pooled_per_label": per, "feature_seconds": round(t_feat, 1)}
