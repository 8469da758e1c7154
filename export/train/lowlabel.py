"""The low-label study (HeartBEiT's central table, at our scale): fine-tune from the MIM-pretrained
backbone and from random initialisation on 1/10/25/100% of the training labels, same seeds, same
step budget, same held-out test records (every record once, over the cross-validation folds);
AUROC per label with record-bootstrap intervals."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ecg.errors import ConfigError
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
                 steps: int | None = None, folds: Sequence[int] | None = None, out: str | Path = ".cache/results",
                 prepared: tuple | None = None, inits: Sequence[str] = ("pretrained", "random")) -> dict:
    """Run the study on the config's task; writes ``<out>/lowlabel-<name>.json`` and prints a table.

    Every fold of the record-grouped cross-validation (``folds``: all by default) is test once, so
    the table covers every record of the task, not the few of one fold; each fold trains on the
    same label subset for both initialisations. AUROC counts only within-fold pairs (out-of-fold
    scores of different models are not comparable), with 95% intervals by resampling records.
    ``inits`` runs one arm alone (a GPU can run both arms at once in two processes);
    ``merge_lowlabel`` joins the halves.
    """
    from export.train.build import task_images

    cfg = load_config(config_path)
    spec, td, images = prepared if prepared is not None else task_images(cfg)
    ft = dataclass_from(FinetuneConfig, cfg.get("finetune"), f"{config_path}: [finetune]")
    if steps:
        ft.steps = int(steps)
    init = cfg.get("init", {}).get("pretrained")
    if "pretrained" in inits and not (init and Path(init).is_file()):
        raise ConfigError(f"{config_path}: [init] pretrained",
                          f"the study compares against a pretrained backbone, and {init or 'none'} is not a file")
    names = td.windows.label_names
    labels, groups = td.windows.labels, td.windows.groups
    k = int(cfg.get("eval", {}).get("folds", 4))
    fold_of = fold_assignment(groups, labels, td.eval_mask, td.always_train, k, ft.seed)
    folds = list(range(k)) if folds is None else list(folds)
    splits = {f: split_for_fold(fold_of, f, groups, labels, td.eval_mask, td.always_train, ft.seed) for f in folds}
    test = np.concatenate([splits[f][2] for f in folds])
    images = np.asarray(images)
    rows = []
    for frac in fractions:
        for kind in inits:
            start = init if kind == "pretrained" else None
            t0 = time.monotonic()
            p = np.full((len(labels), len(names)), np.nan, dtype=np.float32)
            n_train, best = [], []
            for f in folds:
                tr, va, te = splits[f]
                sub = label_subset(tr, labels, frac, ft.seed + f)
                fcfg = FinetuneConfig(**{**ft.__dict__, "seed": ft.seed + f})
                res = finetune(images[sub], labels[sub], images[va], labels[va], fcfg, start,
                               desc=f"{kind} {frac:.0%} fold {f + 1}/{k}")
                p[te] = predict(res.model, images[te])
                n_train.append(int(len(sub)))
                best.append(res.best_step)
            y, pt, g, fo = labels[test], p[test], groups[test], fold_of[test]
            per = {n: label_metrics(y[:, j], pt[:, j], g, 0.5, n_boot=500, folds=fo)["auroc"] for j, n in enumerate(names)}
            mean = _bootstrap_mean_auroc(y, pt, g, fo)
            rows.append({"fraction": frac, "train_windows": int(np.mean(n_train)), "init": kind, "mean_auroc": mean,
                         "auroc": per, "best_step": best, "seconds": round(time.monotonic() - t0, 1)})
            log.info("low-label %s %.0f%% (%d windows per fold): mean AUROC %s", kind, frac * 100, np.mean(n_train), mean)
    report = {"task": cfg["data"]["task"], "folds": folds, "test_windows": int(len(test)),
              "test_records": int(len(np.unique(groups[test]))), "steps": ft.steps, "batch_size": ft.batch_size,
              "seed": ft.seed, "pretrained": init if "pretrained" in inits else None, "rows": rows}
    Path(out).mkdir(parents=True, exist_ok=True)
    suffix = "" if len(inits) == 2 else f"-{inits[0]}"
    Path(out, f"lowlabel-{cfg['bundle']['name']}{suffix}.json").write_text(json.dumps(report, indent=1))
    if len(inits) == 2:
        print(format_lowlabel(report))
    return report


def merge_lowlabel(parts: Sequence[dict]) -> dict:
    """One report from the single-arm reports of the same task, folds and budget."""
    first = parts[0]
    for r in parts[1:]:
        for key in ("task", "folds", "steps", "batch_size", "seed", "test_windows"):
            if r[key] != first[key]:
                raise ValueError(f"low-label halves differ in {key}: {first[key]!r} vs {r[key]!r}")
    merged = dict(first)
    merged["pretrained"] = next((r["pretrained"] for r in parts if r.get("pretrained")), None)
    merged["rows"] = sorted((row for r in parts for row in r["rows"]), key=lambda row: (row["fraction"], row["init"]))
    return merged


def _bootstrap_mean_auroc(y: np.ndarray, p: np.ndarray, groups: np.ndarray, folds: np.ndarray) -> dict:
    """Mean over labels of the within-fold AUROC, with a 95% interval resampling records."""
    from export.train.validation import mean_auroc

    return mean_auroc(y, p, groups, folds, n_boot=500)


def format_lowlabel(report: dict) -> str:
    lines = [f"low-label study, task {report['task']}: every record tested once over folds {report['folds']} = "
             f"{report['test_windows']} windows of {report['test_records']} records; {report['steps']} steps x batch "
             f"{report['batch_size']}, seed {report['seed']} (+ fold); mean within-fold AUROC over labels [95% CI]",
             f"{'labels':>8} {'windows':>8} {'pretrained: mean AUROC [95% CI]':>34} {'random init: mean AUROC [95% CI]':>34}"]
    by = {}
    for r in report["rows"]:
        by.setdefault(r["fraction"], {})[r["init"]] = r
    for frac, d in by.items():
        def cell(r):
            m = r["mean_auroc"]
            return "n/a" if m["value"] is None else f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"
        any_row = next(iter(d.values()))
        lines.append(f"{frac:>8.0%} {any_row['train_windows']:>8} {cell(d['pretrained']) if 'pretrained' in d else '-':>34} "
                     f"{cell(d['random']) if 'random' in d else '-':>34}")
    return "\n".join(lines)
