"""Pretrain HeartBEiT at scale on a lent GPU box, in one prepared, timed run.

    # here, beside the records (packs: real windows at the GPU config's 224 px; the wheel: the
    # synthetic-ECG generator, since the box reaches no package index)
    edge-ecg train pack configs/af.toml configs/12lead-screen.toml --out .cache/packs-224 --img-size 224
    .venv/bin/python -m pip download deepfake-ecg==1.1.2 --no-deps -d .cache/wheels
    # there (the device tool: carry .cache/wheels first, then .cache/packs-224; files under .cache
    # stay on the box between calls while it is warm)
    python3 scripts/pretrain_on_gpu.py corpus --config configs/pretrain-gpu.toml --wheels .cache/wheels
    python3 scripts/pretrain_on_gpu.py pretrain --config configs/pretrain-gpu.toml --packs .cache/packs-224 \\
        --out "$OUT" --deadline 500

``corpus`` installs deepfake-ecg from the carried wheel (no network), generates the synthetic
ECGs on the GPU and renders them with a pool of CPU processes into corpus shards
(``export.datasets.corpus``). ``pretrain`` adds the packs' real windows as corpus parts, then runs
``edge-ecg train pretrain`` under ``torchrun`` with one process per GPU (NCCL), the same command
as on one CPU, streaming the shards by rank; it stops at ``--deadline`` seconds (a checkpoint is
written every ``checkpoint_every`` steps and a later call resumes it, with any number of GPUs)
and puts the backbone, its loss history and the logs into ``--out`` (the device tool's $OUT).
``EDGE_ECG_QUICK=1`` runs both on this CPU with 40 synthetic ECGs and 3 steps (a dry run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
QUICK = os.environ.get("EDGE_ECG_QUICK") == "1"


def _config(path: Path) -> dict:
    from export.train.config import load_config

    cfg = load_config(path)
    if QUICK:  # a dry run of every step on this machine's CPU
        cfg["corpus"].update(synthetic=40, synthetic_device="cpu", workers=2, shard_size=16,
                             out=str(Path(cfg["corpus"]["out"]).with_name("quick")))
        cfg["pretrain"].update(size="tiny", steps=3, batch_size=8, device="cpu", checkpoint_every=1, mask_bank=64)
        for lay in cfg["layouts"].values():
            lay.update(width=64, height=64)
        cfg["pretrain"]["img_size"] = 64
        cfg["output"]["dir"] = str(Path(cfg["output"]["dir"]).with_name("quick"))
    return cfg


def corpus(args) -> int:
    from export.datasets.corpus import build_corpus, corpus_config

    wheels = sorted(Path(args.wheels).glob("deepfake_ecg-*.whl")) if args.wheels else []
    try:
        import deepfakeecg  # noqa: F401
    except ImportError:
        if not wheels:
            raise SystemExit("deepfake-ecg is not installed and no wheel was carried (--wheels)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[-1])], check=True)
    cfg = _config(Path(args.config))
    t0 = time.monotonic()
    manifest = build_corpus(corpus_config(cfg), Path("."), Path(cfg["corpus"]["out"]))
    print(f"corpus: {manifest['images']} images in {len(manifest['shards'])} shards, {time.monotonic() - t0:.0f} s", flush=True)
    return 0


def pretrain(args) -> int:
    import torch

    from export.datasets.corpus import add_images_part, corpus_config, write_manifest
    from export.datasets.pack import load_pack

    cfg = _config(Path(args.config))
    out_corpus = Path(cfg["corpus"]["out"])
    for pack in sorted(Path(args.packs).glob("*.pack")) if args.packs else []:
        part = f"pack-{pack.stem}"
        if not (out_corpus / "parts" / f"{part}.json").is_file():
            p = load_pack(pack)
            layout = "12lead" if p.spec.get("layout") == "12lead" else "af"
            add_images_part(out_corpus, part, pack.name, layout, p.images, int(cfg["corpus"].get("shard_size", 4096)))
    write_manifest(corpus_config(cfg), out_corpus)
    run_cfg = Path(".cache") / "pretrain-run.toml"
    run_cfg.parent.mkdir(parents=True, exist_ok=True)
    run_cfg.write_text(_toml(cfg))
    gpus = max(1, torch.cuda.device_count())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus if not QUICK else 2),
           "-m", "edge_ecg", "train", "pretrain", str(run_cfg)]
    print(" ".join(cmd), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "pretrain.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            proc.wait(timeout=args.deadline)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the last checkpoint stays; a later call resumes it
            proc.wait(30)
    ck = Path(cfg["output"]["dir"])
    with tarfile.open(out / "pretrain.tar", "w") as tar:
        for f in ("pretrained.pt", "history.json", "last.pt"):
            if (ck / f).is_file() and (f != "last.pt" or not (ck / "pretrained.pt").is_file()):
                tar.add(ck / f, arcname=f"{ck.name}/{f}")
    print(f"pretraining exited {proc.returncode}; {out / 'pretrain.tar'}", flush=True)
    return 0 if proc.returncode == 0 else 1


def _toml(cfg: dict) -> str:
    from edge_ecg.bundle import dump_toml

    return dump_toml({k: v for k, v in cfg.items() if not k.startswith("_")})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("corpus", "pretrain"))
    ap.add_argument("--config", default=str(REPO / "configs" / "pretrain-gpu.toml"))
    ap.add_argument("--wheels", default=None, help="folder with the deepfake-ecg wheel (the box has no package index)")
    ap.add_argument("--packs", default=None, help="folder of packs whose images join the corpus")
    ap.add_argument("--out", default=".cache/gpu-out")
    ap.add_argument("--deadline", type=float, default=500.0, help="seconds of pretraining before it is stopped")
    args = ap.parse_args()
    os.chdir(REPO)
    return corpus(args) if args.step == "corpus" else pretrain(args)


if __name__ == "__main__":
    raise SystemExit(main())
