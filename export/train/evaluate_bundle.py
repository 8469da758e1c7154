"""``edge-ecg eval model BUNDLE``: run a written bundle's FP32 and INT8 graphs, through the
appliance's own runtime, on the windows its model never trained on, and print metrics and
INT8/FP32 agreement. Rebuilds the split from the config (folds are a pure function of the data)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge_ecg.errors import ConfigError

log = logging.getLogger(__name__)


def evaluate_bundle(bundle_path: str | Path, config_path: str | Path | None = None, threads: int | None = 2) -> dict:
    from edge_ecg.bundle import load_bundle
    from edge_ecg.render import to_model_input
    from edge_ecg.runtimes import open_runtime
    from export.datasets.cache import rendered
    from export.train.build import agreement
    from export.train.config import load_config
    from export.train.evaluate import fold_assignment, format_metrics, label_metrics, split_for_fold
    from export.train.tasks import build_task, shared_root

    bundle = load_bundle(bundle_path)  # verifies every hash first
    config_path = Path(config_path or Path("configs") / f"{bundle.name}.toml")
    cfg = load_config(config_path)
    if bundle.spec.to_dict() != cfg.get("render"):
        from edge_ecg.render import RenderSpec

        if bundle.spec != RenderSpec.from_dict(cfg.get("render", {})):
            raise ConfigError(config_path, f"[render] differs from the RenderSpec inside {bundle.root}")
    data = cfg["data"]
    td = build_task(str(data["task"]), shared_root(data.get("shared")), float(data.get("window_s", 10.0)),
                    int(data.get("per_record", 2)))
    if td.windows.label_names != bundle.label_names:
        raise ConfigError(config_path, f"task labels {td.windows.label_names} != bundle labels {bundle.label_names}")
    if bundle.input_leads and tuple(bundle.input_leads) != tuple(td.leads):
        raise ConfigError(config_path, f"task leads {td.leads} != the bundle's [input] leads {bundle.input_leads}")
    images = rendered(td.windows, bundle.spec, Path(cfg.get("cache", {}).get("dir", ".cache/windows")), leads=td.leads)
    training = bundle.provenance.get("training", {})
    k, ship = int(training.get("folds", cfg["eval"]["folds"])), int(training.get("shipped_fold", 0))
    seed = int(cfg.get("finetune", {}).get("seed", 0))
    labels, groups = td.windows.labels, td.windows.groups
    folds = fold_assignment(groups, labels, td.eval_mask, td.always_train, k, seed)
    _, va, te = split_for_fold(folds, ship, groups, labels, td.eval_mask, td.always_train, seed,
                               max_val_windows=int(cfg.get("eval", {}).get("max_val_windows", 300)))
    held = np.concatenate([va, te])
    x = to_model_input(np.asarray(images[held]))
    logits = {}
    for precision in ("fp32", "int8"):
        rt = open_runtime(bundle, backend="onnxruntime", precision=precision, threads=threads)
        logits[precision] = np.concatenate([rt.run(x[i:i + 32]) for i in range(0, len(x), 32)])
    thr = bundle.thresholds.astype(np.float64)
    cals = [l.calibration.to_dict() for l in bundle.labels] if bundle.calibrated else None
    agree = agreement(logits["fp32"], logits["int8"], thr, cals)
    report = {"bundle": str(bundle.root), "windows": int(len(held)), "records": int(len(np.unique(groups[held]))),
              "int8_vs_fp32": agree, "metrics": {}}
    for precision, lg in logits.items():
        p = bundle.probabilities(lg)  # calibrated where the bundle carries a calibration
        report["metrics"][precision] = {n: label_metrics(labels[held, j], p[:, j], groups[held], thr[j], n_boot=500)
                                        for j, n in enumerate(bundle.label_names)}
    print(f"{bundle.name}: {len(held)} held-out windows of {report['records']} records "
          f"(fold {ship} validation + test; the shipped model never trained on them)")
    for precision in ("fp32", "int8"):
        print(f"-- {precision} (thresholds from bundle.toml)")
        print(format_metrics(report["metrics"][precision]))
    print(f"INT8 vs FP32: top-label agreement {agree['top_label_agreement']:.4f}, decision agreement "
          f"{agree['decision_agreement']:.4f}, max |logit diff| {agree['max_abs_logit_diff']:.4f}")
    return report
