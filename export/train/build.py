"""``edge-ecg train bundle CONFIG``: windows -> cross-validated fine-tuning -> FP32 + INT8 bundle.

The bundle's model is the model of one cross-validation fold (``[eval] ship_fold``): its
thresholds were chosen on that fold's validation records, and the metrics in ``bundle.toml``
are the pooled out-of-fold results of all folds (every evaluable record tested exactly once by a
model that never saw it). A refit on all records would cost another training run on a 2-core
build machine and would ship a model whose thresholds nobody validated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_ecg.errors import ConfigError
from export.datasets.cache import rendered
from export.train.config import dataclass_from, load_config
from export.train.evaluate import CrossValResult, cross_validate, format_metrics, summarize_cv
from export.train.finetune import FinetuneConfig
from export.train.tasks import build_task, shared_root

log = logging.getLogger(__name__)

# INT8 calibration windows, drawn from the shipped model's training records (the issue asks for
# >= 500 where the data allow; 12lead-screen has only ~120 training windows per fold).
CALIBRATION_WINDOWS = 512

ATTRIBUTION = (
    "Derived from PhysioNet data (ODC-By 1.0): Goldberger et al., PhysioBank, PhysioToolkit, and PhysioNet, "
    "Circulation 101(23), 2000; Moody & Mark, IEEE EMB Magazine 20(3), 2001 (MIT-BIH Arrhythmia Database); "
    "Kalyakulina et al., IEEE Access 2020 (LUDB); Clifford et al., CinC 2015 (false alarm challenge); "
    "Clifford et al., AF Classification from a Short Single Lead ECG Recording: the PhysioNet/Computing in "
    "Cardiology Challenge 2017, CinC 44, 2017; and from PTB-XL (CC BY 4.0): Wagner et al., PTB-XL, a large "
    "publicly available electrocardiography dataset, Scientific Data 7, 154 (2020). Pretraining also used "
    "synthetic ECGs of deepfake-ecg (MIT licence; Thambawita et al., Scientific Reports 2021)."
)


def task_images(cfg: dict):
    """(spec, TaskData, images memmap) of a bundle config, rendering what is not cached."""
    from edge_ecg.render import RenderSpec

    data = cfg.get("data", {})
    spec = RenderSpec.from_dict(cfg.get("render", {}))
    td = build_task(str(data.get("task", "")), shared_root(data.get("shared")), float(data.get("window_s", 10.0)),
                    int(data.get("per_record", 2)))
    images = rendered(td.windows, spec, Path(cfg.get("cache", {}).get("dir", ".cache/windows")), leads=td.leads)
    return spec, td, images


def label_settings(cfg: dict, names) -> tuple[list[str], list[float | None]]:
    table = cfg.get("labels", {})
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ConfigError(f"{cfg['_path']}: [labels]", f"labels {unknown} are not outputs of this task {tuple(names)}")
    prio = [str(table.get(n, {}).get("priority", "medium")) for n in names]
    minsens = [table.get(n, {}).get("min_sensitivity") for n in names]
    return prio, [None if m is None else float(m) for m in minsens]


def label_meta(cfg: dict, names) -> list[dict]:
    """Per label: display name, whether the factory means it to alarm, and the operating-point
    rule its default threshold follows (``[labels.<name>]``)."""
    from export.train.calibrate import RULES

    table = cfg.get("labels", {})
    out = []
    for n in names:
        t = table.get(n, {})
        rule = str(t.get("operating_point", "youden"))
        if rule not in RULES:
            raise ConfigError(f"{cfg['_path']}: [labels.{n}] operating_point", f"{rule!r} (allowed: {', '.join(RULES)})")
        out.append({"display_name": str(t.get("display_name", "")), "alarm_capable": bool(t.get("alarm_capable", False)),
                    "operating_point": rule})
    return out


def eval_rules(cfg: dict) -> list[str]:
    from export.train.calibrate import RULES

    rules = list(cfg.get("eval", {}).get("rules", ["youden", "sens90", "spec95"]))
    for r in rules:
        if r not in RULES:
            raise ConfigError(f"{cfg['_path']}: [eval] rules", f"{r!r} (allowed: {', '.join(RULES)})")
    return rules


def model_inputs(cfg: dict, ft: FinetuneConfig, init: str | None, images: np.ndarray, image_key: str | None = None):
    """What training reads: the images, or (partial fine-tuning) the frozen trunk's tokens of
    them, with the ``init`` that goes with them (a ``Backbone`` for the token path)."""
    if not ft.train_blocks:
        return np.asarray(images), init
    from export.models.heartbeit import CONFIGS
    from export.train.trunk import Backbone, trunk_tokens

    backbone = Backbone(init, ft.size, ft.img_size, ft.seed)
    depth = CONFIGS[ft.size].depth
    tokens = trunk_tokens(backbone, images, depth - int(ft.train_blocks), threads=ft.threads, key=image_key)
    return tokens, backbone


def _run_dir(cfg: dict, ft: FinetuneConfig, init: str | None) -> Path:
    key = json.dumps({"ft": asdict(ft), "eval": cfg.get("eval", {}), "data": cfg.get("data", {}),
                      "render": cfg.get("render", {}), "labels": cfg.get("labels", {}), "init": init}, sort_keys=True)
    return Path(".cache") / "runs" / f"{cfg['bundle']['name']}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def train_and_evaluate(cfg: dict, prepared: tuple | None = None) -> dict:
    """Cross-validate (cached in ``.cache/runs``), returning everything the bundle step needs.

    ``prepared`` is ``(spec, TaskData, images)`` when they come from a pack (training on a machine
    without the records); otherwise they are built from the shared folders and the render cache.
    """
    from export.models.heartbeit import load_checkpoint, save_checkpoint
    from export.train.validation import label_validation

    spec, td, images = prepared if prepared is not None else task_images(cfg)
    names = td.windows.label_names
    prio, minsens = label_settings(cfg, names)
    meta = label_meta(cfg, names)
    rules = eval_rules(cfg)
    ft = dataclass_from(FinetuneConfig, cfg.get("finetune"), f"{cfg['_path']}: [finetune]")
    ev = cfg.get("eval", {})
    k, ship = int(ev.get("folds", 5)), int(ev.get("ship_fold", 0))
    init = cfg.get("init", {}).get("pretrained") or None
    if init and not Path(init).is_file():
        raise ConfigError(f"{cfg['_path']}: [init] pretrained",
                          f"{init} does not exist; run `edge-ecg train pretrain configs/pretrain.toml` first")
    run = _run_dir(cfg, ft, init)
    labels, groups = td.windows.labels, td.windows.groups
    inputs, start_init = model_inputs(cfg, ft, init, images)
    if (run / "cv.npz").is_file() and (run / "model.pt").is_file():
        log.info("reusing cross-validation results in %s", run)
        cv = load_cv(run, ship)
        model, _ = load_checkpoint(run / "model.pt")
    else:
        cv = cross_validate(inputs, labels, groups, td.eval_mask, td.always_train, k, ft, start_init,
                            minsens, keep_models=(ship,), seed=ft.seed, rules=rules,
                            max_val_windows=int(ev.get("max_val_windows", 300)),
                            default_rules=[m["operating_point"] for m in meta])
        model = cv.fold_models[ship]
        run.mkdir(parents=True, exist_ok=True)
        tr, va, te = cv.fold_splits[ship]
        np.savez(run / "cv.npz", folds=cv.folds, oof=cv.oof, oof_logit=cv.oof_logit, oof_threshold=cv.oof_threshold,
                 train_idx=tr, val_idx=va, test_idx=te)
        (run / "cv.json").write_text(json.dumps({"fold_thresholds": cv.fold_thresholds, "seconds": cv.seconds,
                                                 "calibrations": cv.calibrations, "rule_thresholds": cv.rule_thresholds,
                                                 "folds_run": sorted(int(f) for f in cv.fold_splits), "start": cv.start}))
        thr = cv.fold_thresholds[ship] if cv.fold_thresholds else [0.5] * len(names)
        # the checkpoint convention of export/__init__.py, so `edge-ecg export bundle` can use it too
        save_checkpoint(model, run / "model.pt", extra={
            "name": cfg["bundle"]["name"], "fold": ship, "render": spec.to_dict(),
            "labels": [{"name": n, "threshold": float(t), "priority": p} for n, t, p in zip(names, thr, prio)],
            "calibrations": cv.calibrations[ship] if cv.calibrations else None,
            "window_s": float(cfg.get("data", {}).get("window_s", 10.0)),
            "hop_s": float(cfg.get("bundle", {}).get("hop_s", 2.0))})
    n_boot = int(ev.get("n_boot", 1000))
    metrics = summarize_cv(cv, labels, groups, names, n_boot)
    validation = label_validation(cv, labels, groups, names, n_boot) if cv.calibrations else {}
    extra = task_figures(cfg, td, cv, names, inputs, labels, groups, ft, start_init, n_boot, run)
    return {"spec": spec, "td": td, "images": images, "names": names, "priorities": prio, "min_sensitivity": minsens,
            "cv": cv, "model": model, "metrics": metrics, "ship": ship, "folds": k, "finetune": ft, "init": init,
            "run_dir": run, "validation": validation, "label_meta": meta, "rules": rules, "task_figures": extra}


def load_cv(run: Path, ship: int) -> CrossValResult:
    """A cross-validation written by ``train_and_evaluate`` (its arrays and what each fold chose)."""
    z = np.load(run / "cv.npz", allow_pickle=False)
    meta = json.loads((run / "cv.json").read_text())
    cv = CrossValResult(z["folds"], z["oof"], z["oof_threshold"], meta["fold_thresholds"], seconds=meta["seconds"],
                        oof_logit=z["oof_logit"] if "oof_logit" in z.files else None,
                        calibrations=meta.get("calibrations", []), rule_thresholds=meta.get("rule_thresholds", []),
                        start=meta.get("start"))
    for f in meta.get("folds_run", range(len(meta["fold_thresholds"]))):
        cv.fold_splits[int(f)] = None
    cv.fold_splits[ship] = (z["train_idx"], z["val_idx"], z["test_idx"])
    return cv


def task_figures(cfg, td, cv, names, inputs, labels, groups, ft, init, n_boot: int, run: Path) -> dict:
    """Figures particular to a task: record-level CinC 2017 classes (``af``), PTB-XL fold 9 as a
    held-out test set and the macro AUROC (``12lead-screen``)."""
    from export.train.validation import holdout_metrics, mean_auroc, record_level_cinc2017

    out: dict = {}
    have = ~np.isnan(cv.oof[:, 0])
    if len(names) > 1:
        out["cv_macro_auroc"] = mean_auroc(labels[have], cv.oof[have], groups[have], cv.folds[have], n_boot)
    if cfg["data"]["task"] == "af" and any(str(g).startswith("cinc2017:") for g in groups[have]):
        out["cinc2017_records"] = record_level_cinc2017(cv, td.windows, names, n_boot)
    if td.holdout is not None and td.holdout.any():
        path = run / "holdout.npz"
        if path.is_file():
            z = np.load(path)
            p_hold, test = z["p"], z["test"]
        else:
            p_hold, test = holdout_predictions(inputs, labels, groups, td, ft, init, names)
            np.savez(path, p=p_hold, test=test)
        out["holdout"] = {"name": "PTB-XL stratified fold 9 (trained on LUDB + PTB-XL folds 1-8)",
                          **holdout_metrics(labels[test], p_hold, groups[test], names, n_boot)}
    return out


def holdout_predictions(inputs, labels, groups, td, ft: FinetuneConfig, init, names) -> tuple[np.ndarray, np.ndarray]:
    """Train once on every record outside ``td.holdout`` (20% of them validation: early stopping and
    calibration) and predict the held-out windows; returns (calibrated probabilities, their indices)."""
    from export.train.calibrate import fit_platt
    from export.train.crossval import grouped_folds
    from export.train.finetune import finetune, predict_logits

    test = np.nonzero(td.holdout)[0]
    rest = np.nonzero(~td.holdout)[0]
    sub = grouped_folds(groups[rest], labels[rest], 5, ft.seed)
    val, train = rest[sub == 0], rest[sub != 0]
    res = finetune(inputs[train], labels[train], inputs[val], labels[val], ft, init, desc="holdout")
    z_val = predict_logits(res.model, inputs[val], start=res.start)
    z = predict_logits(res.model, inputs[test], start=res.start)
    cals = [fit_platt(z_val[:, j], labels[val, j]) for j in range(len(names))]
    return np.stack([cals[j](z[:, j]) for j in range(len(names))], axis=1), test


def agreement(fp32_logits: np.ndarray, int8_logits: np.ndarray, thresholds: np.ndarray,
              calibrations: list | None = None) -> dict:
    """INT8 vs FP32: top-label (argmax) agreement and per-label decision agreement at the thresholds
    (on calibrated probabilities when ``calibrations``, one {scale, bias} per label, are given)."""
    logit_thr = np.log(np.clip(thresholds, 1e-6, 1 - 1e-6) / (1 - np.clip(thresholds, 1e-6, 1 - 1e-6)))
    if calibrations:  # sigmoid(a z + b) >= t  <=>  z >= (logit(t) - b) / a
        logit_thr = np.array([(lt - c["bias"]) / c["scale"] for lt, c in zip(logit_thr, calibrations)])
    dec = (fp32_logits >= logit_thr) == (int8_logits >= logit_thr)
    out = {"windows": int(len(fp32_logits)),
           "decision_agreement": round(float(dec.all(axis=1).mean()), 4),
           "max_abs_logit_diff": round(float(np.abs(fp32_logits - int8_logits).max()), 4)}
    if fp32_logits.shape[1] > 1:
        out["top_label_agreement"] = round(float((fp32_logits.argmax(1) == int8_logits.argmax(1)).mean()), 4)
    else:  # one output: the "top label" is the thresholded decision
        out["top_label_agreement"] = out["decision_agreement"]
    return out


def build_bundle(config_path: str | Path, out: str | Path | None = None, force: bool = True) -> dict:
    """Train (or reuse) the cross-validation of ``config_path``, then export and write the bundle."""
    from edge_ecg.render import to_model_input
    from export.bundle_writer import write_bundle
    from export.calibration import WindowSet as CalibrationSet
    from export.onnx_export import check_parity, export_onnx, onnx_logits
    from export.quantize import QuantConfig, quantize_qdq

    t0 = time.monotonic()
    cfg = load_config(config_path)
    b = cfg.get("bundle", {})
    if "name" not in b:
        raise ConfigError(f"{config_path}: [bundle]", "needs name")
    r = train_and_evaluate(cfg)
    td, images, model, names, cv = r["td"], r["images"], r["model"], r["names"], r["cv"]
    tr, va, te = cv.fold_splits[r["ship"]]
    # rounded as bundle.toml stores them: agreement is measured at the thresholds the appliance uses
    # (a threshold for TPR >= 0.95 sits exactly on a validation positive's score, so the unrounded
    # value would count that window's 1e-7 float noise as a disagreement)
    thresholds = np.round(np.asarray(cv.fold_thresholds[r["ship"]] if cv.fold_thresholds else [0.5] * len(names),
                                     dtype=np.float64), 6)
    refs = td.windows.refs
    rng = np.random.default_rng(0)
    calib_idx = np.sort(rng.choice(tr, size=min(CALIBRATION_WINDOWS, len(tr)), replace=False))
    val_idx = np.concatenate([va, te])  # the shipped model's held-out windows (validation + test records)
    ids = tuple(f"{Path(refs[i].path).stem}:{refs[i].start}:{refs[i].stop}" for i in calib_idx)
    calib = CalibrationSet(np.asarray(images[calib_idx]), ids, 0, tuple(sorted({refs[i].source for i in calib_idx})))
    qcfg = QuantConfig()
    with tempfile.TemporaryDirectory(prefix="edge-ecg-train-") as tmpd:
        tmpd = Path(tmpd)
        fp32 = export_onnx(model, tmpd / "model.onnx")
        x_val = to_model_input(np.asarray(images[val_idx]))
        parity = check_parity(model, fp32, x_val[:32])
        int8 = quantize_qdq(fp32, tmpd / "model.int8.onnx", to_model_input(calib.images), qcfg)
        ship_cal = cv.calibrations[r["ship"]] if cv.calibrations else None
        if ship_cal:
            ship_cal = [{**c, "scale": round(float(c["scale"]), 6), "bias": round(float(c["bias"]), 6)} for c in ship_cal]
        agree = agreement(onnx_logits(fp32, x_val, threads=2), onnx_logits(int8, x_val, threads=2), thresholds, ship_cal)
        log.info("INT8 vs FP32 on %d held-out windows: %s", len(val_idx), agree)
        check_n = min(32, len(va))
        provenance = {
            "description": b.get("description", ""),
            "attribution": ATTRIBUTION,
            "training": {
                "task": cfg["data"]["task"], "config": Path(config_path).name,
                "data": td.windows.summary(), "leads": list(td.leads),
                "init": "masked-image-pretrained (SimMIM pixel target, BEiT blockwise masking)" if r["init"] else "random",
                "input_leads": list(td.input_leads),
                "finetune": asdict(r["finetune"]), "folds": r["folds"], "shipped_fold": r["ship"],
                "shipped_model_train_windows": int(len(tr)), "cv_seconds": round(float(cv.seconds), 1),
            },
            "metrics": {"kind": f"{r['folds']}-fold record-grouped cross-validation, pooled out-of-fold; "
                                "95% intervals by bootstrap over records; sens/spec at each fold's validation-chosen threshold"
                                + ("; probabilities calibrated per fold on its validation records" if ship_cal else ""),
                        **r["metrics"]},
            **({"task_figures": r["task_figures"]} if r.get("task_figures") else {}),
            **({"validation": _without_reliability(r["validation"])} if r.get("validation") else {}),
            "int8_vs_fp32": agree,
            "model": {"family": "heartbeit", "size": model.cfg.name, "config": model.cfg.to_dict(),
                      "parameters": int(sum(p.numel() for p in model.parameters()))},
            "calibration": calib.provenance(),
            "quantization": qcfg.to_dict(),
            "parity_fp32": {"windows": parity.n, "max_abs_logit_diff": parity.max_abs_diff,
                            "top_label_agreement": parity.top_label_agreement},
        }
        if r["init"]:
            provenance["training"]["pretraining"] = pretraining_provenance(r["init"])
        extra = vt_operating_points(r) if cfg["data"]["task"] == "vt-triage" else None
        if extra:
            provenance["vt_triage"] = extra
        labels = bundle_labels(r, thresholds, ship_cal)
        out_dir = Path(out or b.get("out", f"bundles/{b['name']}"))
        bundle = write_bundle(out_dir, name=b["name"], spec=r["spec"], labels=labels, fp32_onnx=fp32, int8_onnx=int8,
                              version=str(b.get("version", "0.1.0")), architecture=f"heartbeit-{model.cfg.name}",
                              window_s=float(cfg["data"].get("window_s", 10.0)), hop_s=float(b.get("hop_s", 2.0)),
                              check_images=np.asarray(images[va[:check_n]]),
                              check_ids=[f"{Path(refs[i].path).stem}:{refs[i].start}:{refs[i].stop}" for i in va[:check_n]],
                              provenance=provenance, overwrite=force, input_leads=td.input_leads)
    size = sum(f.stat().st_size for f in Path(bundle.root).rglob("*") if f.is_file())
    root = Path(bundle.root).resolve()
    shown = root.relative_to(Path.cwd().resolve()) if root.is_relative_to(Path.cwd().resolve()) else root.name
    report = {"bundle": str(shown), "version": str(b.get("version", "")), "bytes": size, "metrics": r["metrics"],
              "validation": r.get("validation"), "task_figures": r.get("task_figures"), "int8_vs_fp32": agree,
              "labels": [l.to_dict() for l in bundle.labels], "training": provenance["training"],
              "vt_triage": extra, "seconds": round(time.monotonic() - t0, 1), "cv_seconds": round(float(cv.seconds), 1)}
    Path(".cache/results").mkdir(parents=True, exist_ok=True)
    Path(f".cache/results/{b['name']}.json").write_text(json.dumps(report, indent=1, default=str))
    if Path(bundle.root).resolve().parent == (Path.cwd() / "bundles").resolve():  # a committed bundle: its figures
        # go to docs/results (the docs' tables are made from them)
        from edge_ecg.results import write_result

        write_result(f"bundle-{b['name']}", json.loads(json.dumps(report, default=str)),
                     command=f"edge-ecg train bundle {config_path}")
    print(f"bundle {bundle.root} ({size / 1e6:.1f} MB), {r['folds']}-fold record-grouped CV (out-of-fold):")
    print(format_metrics(r["metrics"]))
    print(f"INT8 vs FP32 on {agree['windows']} held-out windows: top-label agreement {agree['top_label_agreement']:.4f}, "
          f"decision agreement {agree['decision_agreement']:.4f}")
    if extra:
        print(json.dumps(extra, indent=1))
    return report


def _without_reliability(validation: dict) -> dict:
    """The validation figures for bundle.toml, less the reliability bins (kept in docs/results)."""
    return {n: {**v, "calibration": {k: x for k, x in v["calibration"].items() if k != "reliability"}}
            for n, v in validation.items()}


def bundle_labels(r: dict, thresholds: np.ndarray, calibrations: list | None) -> list:
    """``Label``s of the shipped model: its fold's calibration and default threshold, and every
    operating-point rule with the out-of-fold sensitivity/specificity it reached; the shipped fold's
    threshold for each rule (the appliance may switch to any of them and stay validated)."""
    from edge_ecg.bundle import Calibration, Label, OperatingPoint

    out = []
    ship_pos = sorted(int(f) for f in r["cv"].fold_splits).index(r["ship"]) if r["cv"].rule_thresholds else None
    for j, (n, t, p) in enumerate(zip(r["names"], thresholds, r["priorities"])):
        meta = r["label_meta"][j]
        cal = Calibration(calibrations[j]["method"], calibrations[j]["scale"], calibrations[j]["bias"],
                          "validation records of the shipped fold") if calibrations else None
        ops = []
        for rule, v in (r.get("validation", {}).get(n, {}).get("operating_points", {}) or {}).items():
            thr = round(float(r["cv"].rule_thresholds[ship_pos][rule][j]), 6)
            if rule == meta["operating_point"] and r["min_sensitivity"][j] is None:
                thr = float(t)
            ops.append(OperatingPoint(rule, thr, v["rule"], v["sensitivity"], v["specificity"],
                                      {"ppv": v["ppv"]} if v.get("ppv") is not None else {}))
        ops.sort(key=lambda op: op.name != meta["operating_point"])  # the default first
        out.append(Label(n, float(t), p, meta["display_name"], meta["alarm_capable"], cal, tuple(ops)))
    return out


def pretraining_provenance(checkpoint: str | Path) -> dict:
    """What the backbone was pretrained on and how, from the checkpoint ``pretrain`` wrote."""
    from export.models.heartbeit import load_checkpoint

    _, extra = load_checkpoint(checkpoint)
    keep = ("steps", "batch_size", "lr", "mask_ratio", "img_size", "size", "seed")
    cfg = extra.get("pretrain", {})
    return {"objective": "SimMIM-style pixel regression (L1, norm-pix targets), BEiT blockwise masking",
            "images": extra.get("images"), "final_loss": extra.get("final_loss"), "device": extra.get("device", "cpu"),
            **{k: cfg[k] for k in keep if k in cfg}}


def vt_operating_points(r: dict) -> dict:
    """CinC 2015 alarm metrics of the model alone: TPR, TNR, score at the validation-chosen
    (TPR >= 0.95) thresholds, pooled over folds. The combination with the classical detector is
    computed by ``vt_with_detector`` when ``edge_ecg.dsp`` provides one."""
    from export.train.metrics import challenge_score

    cv, td = r["cv"], r["td"]
    have = ~np.isnan(cv.oof[:, 0]) & td.eval_mask
    y = td.windows.labels[have, 0].astype(bool)
    pred = cv.oof[have, 0] >= cv.oof_threshold[have, 0]
    tp, tn = int((pred & y).sum()), int((~pred & ~y).sum())
    fp, fn = int((pred & ~y).sum()), int((~pred & y).sum())
    out = {"model_alone": {"alarms": int(len(y)), "true_alarms": int(y.sum()), "TP": tp, "TN": tn, "FP": fp, "FN": fn,
                           "TPR": round(tp / max(1, tp + fn), 4), "TNR": round(tn / max(1, tn + fp), 4),
                           "score": round(challenge_score(y, pred), 4)}}
    from export.train.vt_detector import vt_with_detector

    out["with_classical_detector"] = vt_with_detector(td, cv, have)
    return out
