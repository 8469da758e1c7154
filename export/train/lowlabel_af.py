"""HeartBEiT's low-label study at our scale, on CinC 2017 AF, with a signal baseline.

Three arms see the same records: the MIM-pretrained HeartBEiT, the same architecture from
random initialisation, and a 1-D CNN trained end to end on the raw lead
(``export.models.cnn1d``). The two HeartBEiT arms are evaluated by ``protocol``: ``linear`` (a
logistic-regression probe on the frozen backbone's pooled features, its L2 strength chosen on
validation records: what 2 shared CPU cores can afford, and the standard test of what
pretraining put into a representation) or ``partial`` (the last ``train_blocks`` blocks and the
head fine-tuned on cached trunk tokens, ``export.train.trunk``; HeartBEiT's own protocol with
``train_blocks`` = depth, for a GPU). For each seed s the
record-grouped fold s of ``folds`` is the test set, 20% of the other records validation (early
stopping), and the training set keeps ``fraction`` of the remaining *records* (at least one AF
record), the same records for every arm. A record's score is the mean logit of its windows;
AUROC(AF) is computed per seed and pooled over seeds within seed (each record is tested once
per seed), with 95% intervals from a bootstrap over records.

Every (arm, fraction, seed) run is cached as JSON under ``.cache/lowlabel-af/`` so the study
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ecg.errors import ConfigError

log = logging.getLogger(__name__)

ARMS = ("heartbeit-mim", "heartbeit-random", "cnn1d")


@dataclass
class StudyConfig:
    fractions: list = field(default_factory=lambda: [0.01, 0.05, 0.10, 0.25, 1.0])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    arms: list = field(default_factory=lambda: list(ARMS))
    folds: int = 5
    epochs: float = 10.0       # step budget = this many passes over the training windows ...
    min_steps: int = 60        # ... at least this many
    max_steps: int = 300       # ... at most this many (the 100% arm's budget)
    batch_size: int = 64
    vit_lr: float = 1e-3
    cnn_lr: float = 3e-3
    protocol: str = "linear"   # linear | partial (see the module docstring)
    pretrained: str = ""       # the MIM arm's backbone (default: the config's [init] pretrained)
    train_blocks: int = 2      # partial: blocks fine-tuned (the model's depth = full fine-tuning)
    eval_every: int = 30
    patience: int = 4
    threads: int = 2
    n_boot: int = 500


def study_config(cfg: dict) -> StudyConfig:
    from export.train.config import dataclass_from

    return dataclass_from(StudyConfig, cfg.get("study"), f"{cfg.get('_path', '<config>')}: [study]")


def record_subset(records: np.ndarray, is_af: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``fraction`` of ``records`` (at least 2, and at least one AF record), drawn from ``seed``;
    ``is_af`` is aligned with ``records``."""
    rng = np.random.default_rng([seed, int(round(fraction * 1e4))])
    n = max(2, int(round(fraction * len(records))))
    if n >= len(records):
        return np.sort(records)
    pick = rng.choice(len(records), n, replace=False)
    if not is_af[pick].any():
        pick[0] = rng.choice(np.nonzero(is_af)[0])
    return np.sort(records[pick])


def steps_for(cfg: StudyConfig, n_windows: int) -> int:
    return int(min(cfg.max_steps, max(cfg.min_steps, math.ceil(cfg.epochs * n_windows / cfg.batch_size))))


def record_scores(logits: np.ndarray, rec_of_window: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Mean window logit per record (in ``records`` order)."""
    pos = {r: i for i, r in enumerate(records)}
    idx = np.array([pos[r] for r in rec_of_window])
    s = np.zeros(len(records))
    np.add.at(s, idx, logits)
    return s / np.bincount(idx, minlength=len(records))


# --- the CNN arm ------------------------------------------------------------------------------------

def fit_logreg(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (weights, bias) by L-BFGS; ``x`` standardised by the caller."""
    from scipy.optimize import minimize

    n, d = x.shape
    yy = y.astype(np.float64)

    def f(wb):
        w, b = wb[:d], wb[d]
        t = x @ w + b
        sig = 1.0 / (1.0 + np.exp(-np.clip(t, -60, 60)))
        loss = np.mean(np.logaddexp(0, t) - yy * t) + 0.5 * l2 * w @ w
        g = np.concatenate([x.T @ (sig - yy) / n + l2 * w, [np.mean(sig - yy)]])
        return loss, g

    res = minimize(f, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:d], float(res.x[d])


def linear_probe(f_tr, y_tr, f_va, y_va, f_te, grid=(1e-4, 1e-3, 1e-2, 1e-1, 1.0)) -> tuple[np.ndarray, float]:
    """Standardise on training features, pick the L2 strength by validation AUROC, return test logits."""
    from export.train.metrics import auroc

    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    z = [(f - mu) / sd for f in (f_tr, f_va, f_te)]
    best = (-1.0, None, grid[0])
    for l2 in grid:
        w, b = fit_logreg(z[0], y_tr, l2)
        a = auroc(y_va, z[1] @ w + b)
        if a > best[0]:
            best = (a, (w, b), l2)
    w, b = best[1]
    return z[2] @ w + b, best[2]


def train_cnn(x_tr, y_tr, x_va, y_va, steps: int, cfg: StudyConfig, seed: int):
    """End-to-end training of the 1-D CNN with early stopping on validation AUROC."""
    import copy

    import torch

    from export.models.cnn1d import ECGCNN1d
    from export.train.common import batches, cosine_lr
    from export.train.metrics import auroc

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ECGCNN1d(1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.cnn_lr, weight_decay=0.01)
    pos = max(1.0, float(y_tr.sum()))
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([min(20.0, (len(y_tr) - pos) / pos)]))
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr.astype(np.float32))[:, None]
    it = batches(len(x_tr), min(cfg.batch_size, len(x_tr)), rng)
    best, bad = (-1.0, copy.deepcopy(model.state_dict())), 0
    for step in range(steps):
        model.train()
        idx = torch.from_numpy(next(it))
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, cfg.cnn_lr, max(1, steps // 10))
        loss = bce(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
            score = auroc(y_va, predict_cnn(model, x_va))
            if score > best[0]:
                best, bad = (score, copy.deepcopy(model.state_dict())), 0
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    model.load_state_dict(best[1])
    return model


def predict_cnn(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch]))[:, 0].numpy() for i in range(0, len(x), batch)])


# --- the study ---------------------------------------------------------------------------------------

@dataclass
class StudyData:
    """CinC 2017 windows of the ``af`` task: record per window, AF label, and each arm's inputs."""

    records: np.ndarray          # unique record ids
    window_record: np.ndarray    # record id per window
    y: np.ndarray                # AF (0/1) per window
    inputs: dict                 # arm -> array aligned with the windows (tokens or signals)
    stop: int = 4


def cnn_signals(windows, cache: Path) -> np.ndarray:
    """The raw lead of every window at the CNN's rate, normalised, cached as .npy."""
    from edge_ecg.records import read_record

    from export.datasets.windows import read_window
    from export.models.cnn1d import FS, normalise, resample

    key = hashlib.sha256(json.dumps([[Path(r.path).name, r.start, r.stop] for r in windows.refs]).encode()).hexdigest()[:16]
    path = cache / f"signals-{key}.npy"
    if path.is_file():
        return np.load(path)
    out, last = [], (None, None)
    for ref in windows.refs:
        if last[0] != ref.path:
            last = (ref.path, read_record(ref.path))
        w = read_window(ref, ("II",), last[1])
        out.append(resample(w.signals[:, 0], w.fs, FS))
    n = min(len(s) for s in out)
    x = normalise(np.stack([s[:n] for s in out]))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def run_study(config_path: str | Path, arms: Sequence[str] | None = None, out: Path = Path(".cache/lowlabel-af"),
              seeds: Sequence[int] | None = None, run: bool = True) -> dict:
    """Run (or resume) every (arm, fraction, seed) of the study and return the aggregated report.
    ``seeds`` runs only those (several processes can share the study; each run is its own file).
    ``run=False`` trains nothing: the report of the runs already cached (what a time budget allowed)."""
    from export.models.heartbeit import CONFIGS
    from export.train.build import task_images
    from export.train.config import load_config  # noqa: F401 (also used below)
    from export.train.crossval import grouped_folds
    from export.train.finetune import FinetuneConfig, finetune, predict_logits
    from export.train.metrics import auroc
    from export.train.trunk import Backbone, trunk_tokens

    cfg = load_config(config_path)
    sc = study_config(cfg)
    arms = list(arms or sc.arms)
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ConfigError(f"{config_path}: [study] arms", f"unknown arms {unknown} (known: {', '.join(ARMS)})")
    ft = FinetuneConfig(**{**cfg.get("finetune", {}), "train_blocks": sc.train_blocks})
    if run and any(a.startswith("heartbeit") for a in arms):
        spec, td, images = task_images(cfg)
    else:  # the signal arm alone needs no rendering
        from export.train.tasks import build_task, shared_root

        data = cfg["data"]
        td = build_task("af", shared_root(data.get("shared")), float(data["window_s"]), int(data.get("per_record", 2)))
    groups = td.windows.groups.astype(str)
    sel = np.nonzero(np.char.startswith(groups, "cinc2017:"))[0]
    win_rec = groups[sel]
    y = td.windows.labels[sel, td.windows.label_names.index("af")]
    records = np.unique(win_rec)
    rec_af = {r: False for r in records}
    for r, v in zip(win_rec, y):
        rec_af[r] |= bool(v)
    is_af = np.array([rec_af[r] for r in records])
    out.mkdir(parents=True, exist_ok=True)
    if not run:
        return aggregate(out, sc, arms, rec_af)
    if sc.protocol not in ("linear", "partial"):
        raise ConfigError(f"{config_path}: [study] protocol", f"{sc.protocol!r} (allowed: linear, partial)")
    # the bundle's own trunk cut (its train_blocks), so the tokens computed for the bundle serve here
    stop = CONFIGS[ft.size].depth - (int(cfg.get("finetune", {}).get("train_blocks", 1)) if sc.protocol == "linear"
                                     else sc.train_blocks)
    inputs: dict = {}
    init = sc.pretrained or cfg.get("init", {}).get("pretrained")
    for arm in arms:
        if arm == "cnn1d":
            inputs[arm] = (cnn_signals(td.windows.subset(sel), out), None)
            continue
        if arm == "heartbeit-mim" and not (init and Path(init).is_file()):
            raise ConfigError(f"{config_path}: [init] pretrained", f"the MIM arm needs a pretrained backbone; {init} is not a file")
        b = Backbone(init, ft.size, ft.img_size) if arm == "heartbeit-mim" else Backbone(None, ft.size, ft.img_size, 0)
        tokens = trunk_tokens(b, images, stop, threads=sc.threads)
        if sc.protocol == "linear":
            from export.train.trunk import pooled_features

            inputs[arm] = (pooled_features(b, tokens[sel], stop, threads=sc.threads), b)
        else:
            inputs[arm] = (tokens[sel], b)
    rec_fold = grouped_folds(records, is_af[:, None].astype(float), sc.folds, 0)
    fold_of = dict(zip(records, rec_fold))
    wfold = np.array([fold_of[r] for r in win_rec])
    for seed in (sc.seeds if seeds is None else [s_ for s_ in sc.seeds if s_ in seeds]):
        test_recs = records[rec_fold == seed % sc.folds]
        rest = records[rec_fold != seed % sc.folds]
        sub = grouped_folds(rest, _af_mask(rest, rec_af)[:, None].astype(float), 5, seed)
        val_recs, train_pool = rest[sub == 0], rest[sub != 0]
        for frac in sc.fractions:
            train_recs = record_subset(train_pool, _af_mask(train_pool, rec_af), frac, seed)
            tr = np.nonzero(np.isin(win_rec, train_recs))[0]
            va = np.nonzero(np.isin(win_rec, val_recs))[0]
            te = np.nonzero(np.isin(win_rec, test_recs))[0]
            for arm in arms:
                path = out / f"{arm}-{frac:g}-seed{seed}.json"
                if path.is_file():
                    continue
                x, backbone = inputs[arm]
                t0 = time.monotonic()
                steps = steps_for(sc, len(tr))
                if arm == "cnn1d":
                    model = train_cnn(x[tr], y[tr], x[va], y[va], steps, sc, seed)
                    z = predict_cnn(model, x[te])
                    best = None
                elif sc.protocol == "linear":
                    z, best = linear_probe(x[tr], y[tr], x[va], y[va], x[te])
                    steps = None
                else:
                    fcfg = FinetuneConfig(**{**asdict(ft), "seed": seed, "steps": steps, "epochs": 0.0,
                                             "eval_every": sc.eval_every, "patience": sc.patience,
                                             "lr": sc.vit_lr, "batch_size": sc.batch_size, "threads": sc.threads})
                    res = finetune(x[tr], y[tr, None], x[va], y[va, None], fcfg, backbone,
                                   desc=f"{arm} {frac:.0%} seed {seed}")
                    z = predict_logits(res.model, x[te], start=res.start)[:, 0]
                    best = res.best_step
                trecs = np.unique(win_rec[te])
                score = record_scores(z, win_rec[te], trecs)
                yt = np.array([rec_af[r] for r in trecs])
                row = {"arm": arm, "fraction": frac, "seed": seed, "train_records": int(len(train_recs)),
                       "train_windows": int(len(tr)), "train_af_records": int(sum(rec_af[r] for r in train_recs)),
                       "steps": steps, "best_step": best, "test_records": trecs.tolist(), "score": score.round(5).tolist(),
                       "auroc": round(auroc(yt, score), 4), "seconds": round(time.monotonic() - t0, 1)}
                path.write_text(json.dumps(row))
                log.info("low-label %s %g seed %d: AUROC %.4f (%d train records, %.0f s)", arm, frac, seed, row["auroc"],
                         len(train_recs), row["seconds"])
    return aggregate(out, sc, arms, rec_af)


def _af_mask(recs, rec_af) -> np.ndarray:
    return np.array([rec_af[r] for r in recs])


def aggregate(out: Path, sc: StudyConfig, arms: Sequence[str], rec_af: dict) -> dict:
    """Per arm and fraction: AUROC per seed, and pooled within seed with a record-bootstrap interval."""
    from export.train.metrics import auroc_within, bootstrap

    rows = []
    for arm in arms:
        for frac in sc.fractions:
            runs = [json.loads(p.read_text()) for s in sc.seeds if (p := out / f"{arm}-{frac:g}-seed{s}.json").is_file()]
            if not runs:
                continue
            recs = np.concatenate([np.array([f"{r['seed']}|{x}" for x in r["test_records"]]) for r in runs])
            score = np.concatenate([r["score"] for r in runs])
            seed_of = np.concatenate([[r["seed"]] * len(r["score"]) for r in runs]).astype(float)
            y = np.array([rec_af[x.split("|", 1)[1]] for x in recs])
            pooled = bootstrap(auroc_within, y, np.stack([score, seed_of], 1), recs, sc.n_boot).to_dict()
            per = [r["auroc"] for r in runs]
            rows.append({"arm": arm, "fraction": frac, "seeds": [r["seed"] for r in runs], "auroc_per_seed": per,
                         "auroc_mean": round(float(np.mean(per)), 4),
                         "auroc_sd": round(float(np.std(per, ddof=1)), 4) if len(per) > 1 else None,
                         "auroc_pooled": pooled, "train_records": [r["train_records"] for r in runs],
                         "train_af_records": [r["train_af_records"] for r in runs],
                         "steps": [r["steps"] for r in runs], "seconds": [r["seconds"] for r in runs]})
    missing = [f"{arm} {frac:g} seed {s}" for arm in arms for frac in sc.fractions for s in sc.seeds
               if not (out / f"{arm}-{frac:g}-seed{s}.json").is_file()]
    return {"task": "CinC 2017 AF (record-level AUROC)", "config": asdict(sc), "rows": rows, "not_run": missing}


def plot(report: dict, path: Path) -> Path:
    """AUROC(AF) against the fraction of training labels, one line per arm, 95% interval bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"heartbeit-mim": "HeartBEiT, MIM-pretrained", "heartbeit-random": "HeartBEiT, random init",
             "cnn1d": "1-D CNN on the signal"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for arm in ARMS:
        rows = [r for r in report["rows"] if r["arm"] == arm]
        if not rows:
            continue
        x = [100 * r["fraction"] for r in rows]
        v = [r["auroc_pooled"]["value"] for r in rows]
        lo = [r["auroc_pooled"]["value"] - r["auroc_pooled"]["low"] for r in rows]
        hi = [r["auroc_pooled"]["high"] - r["auroc_pooled"]["value"] for r in rows]
        ax.errorbar(x, v, yerr=[lo, hi], marker="o", capsize=3, label=names.get(arm, arm))
    ax.set_xscale("log")
    ax.set_xticks([1, 5, 10, 25, 100])
    ax.set_xticklabels(["1%", "5%", "10%", "25%", "100%"])
    ax.set_xlabel("training labels (share of CinC 2017 training records)")
    ax.set_ylabel("AUROC(AF), test records (95% CI)")
    seeds = sorted({s for r in report["rows"] for s in r["seeds"]})
    ax.set_title(f"Low-label study, CinC 2017 AF (seeds {', '.join(map(str, seeds))}; per point: docs JSON)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def format_study(report: dict) -> str:
    lines = [f"{report['task']}: AUROC pooled over seeds [95% CI] (per-seed values)",
             f"{'labels':>7} {'arm':<18} {'AUROC [95% CI]':<24} per seed"]
    for r in report["rows"]:
        a = r["auroc_pooled"]
        cell = "n/a" if a["value"] is None else f"{a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]"
        lines.append(f"{r['fraction']:>7.0%} {r['arm']:<18} {cell:<24} {', '.join(f'{v:.3f}' for v in r['auroc_per_seed'])}")
    return "\n".join(lines)
