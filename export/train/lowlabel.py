"""The low-label study (HeartBEiT's central table, at our scale): fine-tune from the MIM-pretrained
backbone and from random initialisation on 1/10/25/100% of the training labels, same seeds, same
step budget, same held-out test records; AUROC per label with record-bootstrap intervals."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from export.train.config import dataclass_from, load_config
from export.train.evaluate import fold_assignment, label_metrics, split_for_fold
from export.train.finetune import FinetuneConfig, finetune, predict

log = logging.getLogger(__name__)


def label_subset(train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int, minimum: int = 2) -> np.ndarray:
    """A random ``fraction`` of the training windows (at least ``minimum``), taking one positive of
    each label first where the training set has one, so no label is left without an example."""
    rng = np.random.default_rng(seed)
    n = max(minimum, int(round(fraction * len(train_idx))))
    if n >= len(train_idx):
        return np.sort(train_idx)
    chosen: list[int] = []
    for j in range(labels.shape[1]):
        pos = train_idx[labels[train_idx, j] == 1]
        if len(pos) and not np.any(labels[chosen, j] == 1) and len(chosen) < n:
            chosen.append(int(rng.choice(pos)))
    rest = np.setdiff1d(train_idx, chosen)
    chosen += list(rng.choice(rest, n - len(chosen), replace=False))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def run_lowlabel(config_path: str | Path, fractions: Sequence[float] = (0.01, 0.1, 0.25, 1.0),
                 steps: int | None = None, fold: int = 0, out: str | Path = ".cache/results") -> dict:
    """Run the study on one fold of the config's task; writes ``<out>/lowlabel-<name>.json`` and
    prints a table (mean AUROC over labels and per label, 95% record-bootstrap intervals)."""
    from export.train.build import label_settings, task_images

    cfg = load_config(config_path)
    spec, td, images = task_images(cfg)
    ft = dataclass_from(FinetuneConfig, cfg.get("finetune"), f"{config_path}: [finetune]")
    if steps:
        ft.steps = int(steps)
    init = cfg.get("init", {}).get("pretrained")
    names = td.windows.label_names
    labels, groups = td.windows.labels, td.windows.groups
    k = int(cfg.get("eval", {}).get("folds", 4))
    folds = fold_assignment(groups, labels, td.eval_mask, td.always_train, k, ft.seed)
    tr, va, te = split_for_fold(folds, fold, groups, labels, td.eval_mask, td.always_train, ft.seed)
    images = np.asarray(images)
    rows = []
    for frac in fractions:
        sub = label_subset(tr, labels, frac, ft.seed)
        for kind, start in (("pretrained", init), ("random", None)):
            t0 = time.monotonic()
            res = finetune(images[sub], labels[sub], images[va], labels[va], ft, start, desc=f"{kind} {frac:.0%}")
            p = predict(res.model, images[te])
            per = {n: label_metrics(labels[te, j], p[:, j], groups[te], 0.5, n_boot=500)["auroc"] for j, n in enumerate(names)}
            mean = _bootstrap_mean_auroc(labels[te], p, groups[te])
            rows.append({"fraction": frac, "train_windows": int(len(sub)), "init": kind, "mean_auroc": mean,
                         "auroc": per, "best_step": res.best_step, "seconds": round(time.monotonic() - t0, 1)})
            log.info("low-label %s %.0f%% (%d windows): mean AUROC %s", kind, frac * 100, len(sub), mean)
    report = {"task": cfg["data"]["task"], "fold": fold, "test_windows": int(len(te)),
              "test_records": int(len(np.unique(groups[te]))), "steps": ft.steps, "batch_size": ft.batch_size,
              "seed": ft.seed, "rows": rows}
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, f"lowlabel-{cfg['bundle']['name']}.json").write_text(json.dumps(report, indent=1))
    print(format_lowlabel(report))
    return report


def _auc(y, s):
    from export.train.metrics import auroc

    known = ~np.isnan(y)
    return auroc(y[known], s[known])


def _bootstrap_mean_auroc(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> dict:
    from export.train.metrics import bootstrap

    idx = np.arange(len(y))
    iv = bootstrap(lambda yy, ii: float(np.nanmean([_auc(y[ii.astype(int), j], p[ii.astype(int), j]) for j in range(y.shape[1])])),
                   np.zeros(len(y)), idx.astype(float), groups, n_boot=500)
    return iv.to_dict()


def format_lowlabel(report: dict) -> str:
    lines = [f"low-label study, task {report['task']}: fold {report['fold']} test = {report['test_windows']} windows of "
             f"{report['test_records']} records; {report['steps']} steps x batch {report['batch_size']}, seed {report['seed']}",
             f"{'labels':>8} {'windows':>8} {'pretrained: mean AUROC [95% CI]':>34} {'random init: mean AUROC [95% CI]':>34}"]
    by = {}
    for r in report["rows"]:
        by.setdefault(r["fraction"], {})[r["init"]] = r
    for frac, d in by.items():
        def cell(r):
            m = r["mean_auroc"]
            return "n/a" if m["value"] is None else f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"
        lines.append(f"{frac:>8.0%} {d['pretrained']['train_windows']:>8} {cell(d['pretrained']):>34} {cell(d['random']):>34}")
    return "\n".join(lines)
