"""Fine-tuning a HeartBEiT on multi-label targets (``edge-ecg train finetune``).

One sigmoid output per label with binary cross-entropy, positives weighted by the label's
negative/positive ratio (class weighting: the labels here are rare), BEiT's layer-wise learning
rate decay, and early stopping on a validation split of *other records* than the training ones.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np

from export.train.common import Progress, batches, cosine_lr, seed_everything, set_threads, to_tensor
from export.train.metrics import auroc

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    size: str = "tiny"
    img_size: int = 224
    steps: int = 300
    batch_size: int = 16
    lr: float = 5e-4
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    warmup_steps: int = 20
    eval_every: int = 50
    patience: int = 3          # evaluations without improvement before stopping
    max_pos_weight: float = 20.0
    seed: int = 0
    threads: int | None = 2


def _param_groups(model, cfg: FinetuneConfig):
    """BEiT's layer-wise lr decay: the patch embedding learns slowest, the head fastest."""
    depth = len(model.blocks)
    groups: dict[tuple[int, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("cls_token", "mask_token", "patch_embed")):
            layer = 0
        elif name.startswith("blocks."):
            layer = int(name.split(".")[1]) + 1
        else:
            layer = depth + 1
        no_decay = p.ndim == 1 or name.endswith(("cls_token", "mask_token", "relative_position_bias_table"))
        groups.setdefault((layer, no_decay), []).append(p)
    out = []
    for (layer, no_decay), params in groups.items():
        out.append({"params": params, "scale": cfg.layer_decay ** (depth + 1 - layer),
                    "weight_decay": 0.0 if no_decay else cfg.weight_decay})
    return out


def pos_weights(labels: np.ndarray, cap: float) -> np.ndarray:
    """neg/pos per label, clipped to [1, cap]; labels with no positives get 1."""
    pos = np.nansum(labels, axis=0)
    neg = np.sum(~np.isnan(labels), axis=0) - pos
    w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return np.clip(w, 1.0, cap).astype(np.float32)


def predict(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Sigmoid probabilities (N, K) for uint8 images (N, H, W, 3)."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            out.append(torch.sigmoid(model(to_tensor(images[i:i + batch_size]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), dtype=np.float32)


def _val_score(y: np.ndarray, p: np.ndarray) -> float:
    """Mean AUROC over labels that have both classes in validation; -BCE if none has."""
    aucs = [auroc(y[:, j][~np.isnan(y[:, j])], p[:, j][~np.isnan(y[:, j])]) for j in range(y.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    if aucs:
        return float(np.mean(aucs))
    eps = 1e-6
    yy = np.nan_to_num(y)
    return float(np.mean(yy * np.log(p + eps) + (1 - yy) * np.log(1 - p + eps)))


@dataclass
class FinetuneResult:
    model: object
    best_step: int
    best_val: float
    history: list
    seconds: float


def finetune(train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray,
             cfg: FinetuneConfig, init: Path | str | None = None, desc: str = "finetune") -> FinetuneResult:
    """Fine-tune from ``init`` (a pretrained checkpoint) or from random initialisation (``None``).

    Returns the model of the best validation evaluation (early stopping), not the last one.
    """
    import time
    import torch
    from export.models.heartbeit import create_model, load_checkpoint

    set_threads(cfg.threads)
    rng = seed_everything(cfg.seed)
    k = train_labels.shape[1]
    if init:
        model, _ = load_checkpoint(init)
        if model.cfg.img_size != cfg.img_size:
            raise ValueError(f"{init}: pretrained at {model.cfg.img_size} px, fine-tuning at {cfg.img_size} px")
        model.reset_classifier(k)
    else:
        model = create_model(cfg.size, num_classes=k, img_size=cfg.img_size)
    groups = _param_groups(model, cfg)
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    pw = torch.from_numpy(pos_weights(train_labels, cfg.max_pos_weight))
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=pw, reduction="none")
    it = batches(len(train_images), min(cfg.batch_size, len(train_images)), rng)
    best = (-float("inf"), 0, copy.deepcopy(model.state_dict()))
    history, bad = [], 0
    progress = Progress(cfg.steps, desc, every=10)
    t0 = time.monotonic()
    step = 0
    while step < cfg.steps:
        model.train()
        idx = next(it)
        x = to_tensor(train_images[idx])
        y = torch.from_numpy(np.asarray(train_labels[idx], dtype=np.float32))
        known = ~torch.isnan(y)
        lr = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        loss = (bce(model(x), torch.nan_to_num(y)) * known).sum() / known.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        opt.step()
        step += 1
        progress.update(step, len(idx), loss=loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            p = predict(model, val_images)
            score = _val_score(np.asarray(val_labels), p)
            history.append({"step": step, "train_loss": round(loss.item(), 5), "val_score": round(score, 5)})
            log.info("%s step %d: validation score %.4f (best %.4f at %d)", desc, step, score, best[0], best[1])
            if score > best[0]:
                best, bad = (score, step, copy.deepcopy(model.state_dict())), 0
            else:
                bad += 1
                if bad >= cfg.patience:
                    log.info("%s: early stop at step %d (no improvement for %d evaluations)", desc, step, bad)
                    break
    model.load_state_dict(best[2])
    model.eval()
    return FinetuneResult(model, best[1], best[0], history, time.monotonic() - t0)
