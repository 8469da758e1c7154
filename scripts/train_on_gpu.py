"""Train the demo bundles' models on one CUDA GPU from packs, in one timed run.

    edge-ecg train pack configs/vt-triage.toml configs/rhythm.toml configs/12lead-screen.toml \\
        configs/pretrain.toml --out .cache/packs                       # here, beside the records
    python3 scripts/train_on_gpu.py --packs .cache/packs --out OUTDIR     # there: torch + numpy only

This is how the committed bundles were trained (see README, "Training"). The GPU machine had
torch but neither the records nor wfdb, so it reads packs (``export.datasets.pack``). It runs the
library's own functions, with the configs of ``configs/``, as three processes sharing the GPU
(a tiny ViT leaves most of an H100 idle), most important first:

- ``pretrain``: masked-image pretraining (configs/pretrain.toml), then the cross-validation of
  each bundle config fine-tuned from it (what ships);
- ``lowlabel-pretrained``: once the backbone exists, the low-label study's pretrained arm;
- ``lowlabel-random``: the study's random-initialisation arm, then the bundles'
  cross-validations from random initialisation (the comparison).

A short smoke pass runs every code path first, so a broken environment fails in seconds. At
``--deadline`` seconds unfinished jobs are stopped and whatever finished is still written out.
Back on the build machine, unpack ``runs.tar`` and ``pretrain.tar`` into ``.cache`` and
``edge-ecg train bundle CONFIG`` reuses the cross-validation (``.cache/runs``) to export, quantize
and write the bundle.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUNDLES = ("af", "rhythm", "12lead-screen")
LOWLABEL = {"rhythm": 800, "12lead-screen": 400}  # task -> steps, the same for every run of the study
PRETRAINED = REPO / ".cache" / "pretrain" / "tiny-224" / "pretrained.pt"
QUICK = os.environ.get("EDGE_ECG_QUICK") == "1"  # a dry run of every step with 2 training steps each
# Config overrides for every bundle config, "table.key=value;..." (values as TOML): how the 0.3 configs
# (128 px, partial fine-tuning for 2 CPU cores) become a GPU build, e.g.
# EDGE_ECG_OVERRIDE='finetune.img_size=224;finetune.train_blocks=0;finetune.head_only=false;finetune.epochs=20.0;render.width=224;
#   render.height=224;render.line_width=1.5;init.pretrained=".cache/pretrain/tiny-224-gpu/pretrained.pt"'
OVERRIDE = os.environ.get("EDGE_ECG_OVERRIDE", "")


def _apply_overrides(cfg: dict, spec: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    for item in filter(None, (x.strip() for x in spec.split(";"))):
        key, _, value = item.partition("=")
        table, _, name = key.strip().rpartition(".")
        cfg.setdefault(table, {})[name] = tomllib.loads(f"v = {value.strip()}")["v"]
    return cfg


def _config(name: str, init: str | None = "config") -> dict:
    from export.train.config import load_config

    cfg = load_config(REPO / "configs" / f"{name}.toml")
    cfg["_path"] = f"configs/{name}.toml"
    _apply_overrides(cfg, OVERRIDE)
    if init != "config":
        cfg.setdefault("init", {})["pretrained"] = init or ""
    if QUICK:
        cfg["finetune"].update(steps=2, eval_every=1)
        cfg["eval"]["n_boot"] = 20
    return cfg


def _prepared(packs: Path, name: str):
    from export.train.pipeline import prepared_from_pack

    spec, td, images = prepared_from_pack(packs / f"{name}.pack")
    if QUICK:  # every k-th window, so a dry run on a CPU predicts a few hundred, not thousands
        from export.train.tasks import TaskData

        idx = list(range(0, len(images), max(1, len(images) // 240)))
        td = TaskData(td.windows.subset(idx), td.leads, td.eval_mask[idx], td.always_train[idx])
        images = images[idx]
    return spec, td, images


def _cv(packs: Path, name: str, init: str | None, results: Path) -> None:
    from export.train.build import train_and_evaluate

    r = train_and_evaluate(_config(name, init), _prepared(packs, name))
    kind = "pretrained" if init != "" else "random"
    summary = {"bundle": name, "init": kind, "run_dir": str(r["run_dir"]),  # relative to the checkout
               "metrics": r["metrics"], "cv_seconds": round(float(r["cv"].seconds), 1)}
    (results / f"cv-{name}-{kind}.json").write_text(json.dumps(summary, indent=1, default=str))


def job(name: str, packs: Path, results: Path) -> None:
    """One of the four processes (see the module docstring)."""
    os.chdir(REPO)  # the configs' relative paths (.cache/...) are relative to the checkout
    if name == "pretrain":
        from export.train.pipeline import run_pretrain

        run_pretrain(REPO / "configs" / "pretrain.toml", resume=False, pack=packs / "pretrain.pack",
                     steps=2 if QUICK else None)
        with tarfile.open(results / "pretrain.tar", "w") as tar:
            for f in ("pretrained.pt", "history.json"):
                tar.add(PRETRAINED.parent / f, arcname=f"pretrain/tiny-224/{f}")
        for b in BUNDLES:
            _cv(packs, b, "config", results)
    elif name.startswith("lowlabel-"):
        from export.train.lowlabel import run_lowlabel

        arm = name.split("-", 1)[1]
        if arm == "pretrained":
            while not (results / "pretrain.tar").is_file():
                time.sleep(2)
        for task, steps in LOWLABEL.items():
            run_lowlabel(REPO / "configs" / f"{task}.toml", steps=2 if QUICK else steps, out=results,
                         prepared=_prepared(packs, task), inits=(arm,))
        if arm == "random":
            for b in BUNDLES:
                _cv(packs, b, "", results)
    elif name.startswith("cv:"):  # one bundle's cross-validation from the config's init
        _cv(packs, name[3:], "config", results)
    elif name.startswith("study:"):  # study:TASK:ARM, one arm of the low-label study of one task
        from export.train.lowlabel import run_lowlabel

        _, task, arm, *frac = name.split(":")  # study:TASK:ARM[:FRACTION], a fraction runs alone
        out = results / f"part-{arm}-{frac[0]}" if frac else results
        run_lowlabel(REPO / "configs" / f"{task}.toml", steps=2 if QUICK else LOWLABEL[task], out=out,
                     prepared=_prepared(packs, task), inits=(arm,), **({"fractions": (float(frac[0]),)} if frac else {}))
        if frac:
            (out / f"lowlabel-{task}-{arm}.json").replace(results / f"lowlabel-{task}-{arm}-{frac[0]}.json")
    else:
        raise SystemExit(f"unknown job {name}")


def smoke(packs: Path) -> None:
    """Two steps of every path on a few images, on the GPU, in a scratch folder."""
    import tempfile

    import numpy as np
    from export.datasets.pack import load_pack
    from export.train.finetune import FinetuneConfig, finetune, predict
    from export.train.pretrain import PretrainConfig, pretrain

    images = load_pack(packs / "pretrain.pack").images[:64]
    with tempfile.TemporaryDirectory() as tmp:
        ck = pretrain(images, PretrainConfig(img_size=images.shape[1], steps=2, batch_size=16, mask_bank=64), tmp)
        spec, td, imgs = _prepared(packs, "rhythm")
        y = td.windows.labels[:48]
        for init in (ck, None):
            res = finetune(imgs[:32], y[:32], imgs[32:48], y[32:48],
                           FinetuneConfig(img_size=imgs.shape[1], steps=2, batch_size=8, eval_every=1), init)
            p = predict(res.model, imgs[:8])
            assert p.shape == (8, y.shape[1]) and np.isfinite(p).all()
    print("smoke: ok", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packs", type=Path, default=REPO / ".cache" / "packs")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline", type=float, default=480.0, help="seconds before unfinished jobs are stopped")
    ap.add_argument("--jobs", default="pretrain,lowlabel-pretrained,lowlabel-random",
                    help="comma-separated jobs (also cv:BUNDLE, study:TASK:ARM to finish a run cut by its deadline)")
    ap.add_argument("--no-smoke", action="store_true", help="skip the smoke pass (a rerun on a machine that passed it)")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--results", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    packs = args.packs.resolve()
    if args.job:
        job(args.job, packs, args.results)
        return 0
    t0 = time.monotonic()
    import torch

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}:",
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU", flush=True)
    if not args.no_smoke:
        smoke(packs)
    results = REPO / ".cache" / "gpu-results"
    results.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in args.jobs.split(","):
        log = open(results / f"{name.replace(':', '-')}.log", "w")
        procs[name] = subprocess.Popen([sys.executable, __file__, "--job", name, "--packs", str(packs), "--out",
                                        str(args.out), "--results", str(results)], stdout=log, stderr=subprocess.STDOUT)
    while procs and time.monotonic() - t0 < args.deadline:
        for name, p in list(procs.items()):
            if p.poll() is not None:
                print(f"{time.monotonic() - t0:6.0f} s  {name} exited with {p.returncode}", flush=True)
                del procs[name]
        time.sleep(2)
    for name, p in procs.items():
        print(f"{time.monotonic() - t0:6.0f} s  {name} stopped at the deadline", flush=True)
        p.kill()
    collect(results, args.out)
    print(f"done in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def mean_auroc(metrics: dict) -> float:
    vals = [m["auroc"]["value"] for m in metrics.values() if m["auroc"]["value"] is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def choose_init(results: Path, bundle: str) -> str | None:
    """The bundle ships fine-tuned from the pretrained backbone unless random initialisation gave
    the higher mean out-of-fold AUROC (a choice made on the folds' test records, said so in the
    README). Only the chosen model comes back: each is ~11 MB and $OUT holds 64 MB."""
    got = {}
    for kind in ("pretrained", "random"):
        f = results / f"cv-{bundle}-{kind}.json"
        if f.is_file():
            got[kind] = mean_auroc(json.loads(f.read_text())["metrics"])
    if not got:
        return None
    if "pretrained" in got and not got.get("random", float("-inf")) > got["pretrained"]:
        return "pretrained"
    return "random" if "random" in got else "pretrained"


def collect(results: Path, out: Path) -> None:
    """$OUT: pretrain.tar, runs-<bundle>.tar.gz (the chosen run whole, the other's CV results
    without its model), results.tar.gz (json + logs)."""
    out.mkdir(parents=True, exist_ok=True)
    if (results / "pretrain.tar").is_file():
        (results / "pretrain.tar").replace(out / "pretrain.tar")
    choice = {}
    for b in BUNDLES:
        chosen = choose_init(results, b)
        if chosen is None:
            continue
        choice[b] = chosen
        with tarfile.open(out / f"runs-{b}.tar.gz", "w:gz") as tar:
            for f in results.glob(f"cv-{b}-*.json"):
                kind = f.stem.rsplit("-", 1)[1]
                run = Path(json.loads(f.read_text())["run_dir"])
                for item in sorted((REPO / run).iterdir()):
                    if kind == chosen or item.name != "model.pt":
                        tar.add(item, arcname=str(run.relative_to(".cache") / item.name))
    (results / "choice.json").write_text(json.dumps(choice, indent=1))
    print("shipped inits:", choice, flush=True)
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
        for p in sorted(results.iterdir()):
            if p.suffix in (".json", ".log"):
                tar.add(p, arcname=p.name)


if __name__ == "__main__":
    raise SystemExit(main())
