"""Training throughput of the committed configs on this machine, and what `make bundles` costs here.

    python bench/bench_train.py [--steps 6] [--device auto]

Times a few pretraining and fine-tuning steps of each config's model (random images of the
config's size: throughput does not depend on pixel values), prints the median images/s, and
multiplies out the configs' step budgets into an upper bound on `make bundles` (every fold
running to its last step; early stopping usually ends sooner). This is how the README's
"2 cores" figure for the GPU-trained bundles was obtained: measured throughput x step budget,
not a full CPU run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _step_rate(kind: str, cfg, steps: int) -> float:
    """Median images/s over ``steps`` training steps (after one warm-up step)."""
    import torch
    from export.models.heartbeit import create_model
    from export.train.common import ImageStore, adamw, autocast, resolve_device, set_threads
    from export.train.masking import MaskBank
    from export.train.pretrain import _mim_decoder, mim_loss

    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (cfg.batch_size * 2, cfg.img_size, cfg.img_size), dtype=np.uint8)
    store = ImageStore(images, device)
    model = create_model(cfg.size, num_classes=0 if kind == "pretrain" else 4, img_size=cfg.img_size).to(device)
    params = list(model.parameters())
    if kind == "pretrain":
        decoder = _mim_decoder(model).to(device)
        params += list(decoder.parameters())
        bank = MaskBank((cfg.img_size // 16,) * 2, 0.4, rng, 64)
    opt = adamw(params, 1e-4, device)
    times = []
    for i in range(steps + 1):
        idx = np.arange(cfg.batch_size)
        t0 = time.perf_counter()
        x = store.batch(idx)
        with autocast(device, cfg.amp):
            if kind == "pretrain":
                loss = mim_loss(model, decoder, x, torch.from_numpy(bank.sample(len(idx), rng)).to(device))
            else:
                loss = model(x).float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()  # waits for the GPU
        if i:
            times.append(time.perf_counter() - t0)
    return cfg.batch_size / statistics.median(times)


def main(argv=None) -> int:
    from export.train.config import dataclass_from, load_config
    from export.train.finetune import FinetuneConfig
    from export.train.pretrain import PretrainConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--device", default=None, help="override the configs' device (auto, cpu, cuda)")
    args = ap.parse_args(argv)
    total_s = 0.0
    pcfg = dataclass_from(PretrainConfig, load_config(REPO / "configs" / "pretrain.toml")["pretrain"], "pretrain")
    if args.device:
        pcfg.device = args.device
    rate = _step_rate("pretrain", pcfg, args.steps)
    budget = pcfg.steps * pcfg.batch_size / rate
    total_s += budget
    print(f"pretrain  {pcfg.size} {pcfg.img_size}px batch {pcfg.batch_size}: {rate:8.1f} img/s; "
          f"{pcfg.steps} steps -> {budget / 3600:.1f} h")
    for name in ("af", "rhythm", "12lead-screen"):  # full fine-tuning rates: an upper bound for train_blocks configs
        cfg = load_config(REPO / "configs" / f"{name}.toml")
        ft = dataclass_from(FinetuneConfig, cfg["finetune"], name)
        if args.device:
            ft.device = args.device
        rate = _step_rate("finetune", ft, args.steps)
        folds = int(cfg.get("eval", {}).get("folds", 4))
        budget = folds * ft.steps * ft.batch_size / rate
        total_s += budget
        print(f"{name:<13} {ft.size} {ft.img_size}px batch {ft.batch_size}: {rate:8.1f} img/s; "
              f"{folds} folds x {ft.steps} steps -> at most {budget / 3600:.1f} h")
    print(f"make bundles, training steps at most: {total_s / 3600:.1f} h (plus rendering, validation, export: minutes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
