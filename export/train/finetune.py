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

from export.train.common import (
    ImageStore, Progress, adamw, autocast, batches, cosine_lr, resolve_device, seed_everything, set_threads, to_tensor,
)
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
    device: str = "auto"       # "auto": the GPU when torch sees one, else the CPU
    amp: bool = True           # bf16 autocast on a GPU (ignored on the CPU)
    train_blocks: int = 0      # 0: full fine-tuning; k: only the last k blocks (+ head) train, on cached
                               # trunk tokens (export.train.trunk; what 2 CPU cores can afford)
    epochs: float = 0.0        # > 0: the step budget is this many passes over the training windows,
                               # capped by ``steps`` (small label fractions need fewer steps)
    head_only: bool = False    # with train_blocks: those blocks run frozen too, only fc_norm + head train
                               # (a frozen-backbone head, ~3x cheaper per step than training a block)


def _param_groups(model, cfg: FinetuneConfig):
    """BEiT's layer-wise lr decay over the layers the model declares (``layer_id``, ``num_layers``,
    ``no_weight_decay``): the patch embedding learns slowest, the head fastest."""
    top = model.num_layers - 1
    skip = model.no_weight_decay()
    groups: dict[tuple[int, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim == 1 or name in skip
        groups.setdefault((model.layer_id(name), no_decay), []).append(p)
    out = []
    for (layer, no_decay), params in groups.items():
        out.append({"params": params, "scale": cfg.layer_decay ** (top - layer),
                    "weight_decay": 0.0 if no_decay else cfg.weight_decay})
    return out


def pos_weights(labels: np.ndarray, cap: float) -> np.ndarray:
    """neg/pos per label, clipped to [1, cap]; labels with no positives get 1."""
    pos = np.nansum(labels, axis=0)
    neg = np.sum(~np.isnan(labels), axis=0) - pos
    w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return np.clip(w, 1.0, cap).astype(np.float32)


def is_tokens(inputs: np.ndarray) -> bool:
    """Cached trunk tokens are float (N, 1 + P, D); images are uint8 (N, H, W[, 3])."""
    return np.asarray(inputs[:0]).dtype != np.uint8


def _inputs(batch: np.ndarray, dev):
    import torch

    if is_tokens(batch):
        return torch.from_numpy(np.array(batch, dtype=np.float32)).to(dev)  # a writable copy of the memmap rows
    return to_tensor(batch).to(dev)


def predict_logits(model, inputs: np.ndarray, batch_size: int | None = None, device: str = "auto",
                   start: int | None = None) -> np.ndarray:
    """Logits (N, K) for uint8 images, or for trunk tokens (``start`` = the first block to run), in
    float32 on ``device`` (the GPU when there is one); the model goes back where it was."""
    import torch

    model.eval()
    home = next(model.parameters()).device
    dev = resolve_device(device)
    batch_size = batch_size or (256 if dev.type == "cuda" else 64)
    model.to(dev)
    out = []
    with torch.inference_mode():
        for i in range(0, len(inputs), batch_size):
            x = _inputs(inputs[i:i + batch_size], dev)
            y = model.forward_from(x, start) if start is not None else model(x)
            out.append(y.float().cpu().numpy())
    model.to(home)
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), dtype=np.float32)


def predict(model, images: np.ndarray, batch_size: int | None = None, device: str = "auto",
            start: int | None = None) -> np.ndarray:
    """Sigmoid probabilities (N, K) (uncalibrated; ``export.train.calibrate`` maps logits to
    calibrated probabilities)."""
    z = predict_logits(model, images, batch_size, device, start)
    return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)


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
    start: int | None = None  # partial fine-tuning: the first trained block (inputs are its tokens)


def finetune(train_images: np.ndarray, train_labels: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray,
             cfg: FinetuneConfig, init=None, desc: str = "finetune") -> FinetuneResult:
    """Fine-tune from ``init`` (a pretrained checkpoint path, an ``export.train.trunk.Backbone``, or
    ``None`` = random initialisation). With ``cfg.train_blocks`` the inputs are trunk tokens
    (``export.train.trunk.trunk_tokens`` of the same backbone) and only the last blocks train.

    Returns the model of the best validation evaluation (early stopping), not the last one.
    """
    import time
    import torch
    from export.train.trunk import Backbone

    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    rng = seed_everything(cfg.seed)
    k = train_labels.shape[1]
    backbone = init if isinstance(init, Backbone) else Backbone(str(init) if init else None, cfg.size, cfg.img_size, cfg.seed)
    if backbone.checkpoint is None and not cfg.train_blocks:
        backbone = Backbone(None, cfg.size, cfg.img_size, cfg.seed)  # full fine-tuning from scratch: the fold's seed
    model = backbone.build(k)
    start = None
    if cfg.train_blocks:
        start = len(model.blocks) - int(cfg.train_blocks)
        if not 0 <= start < len(model.blocks):
            raise ValueError(f"train_blocks {cfg.train_blocks} outside 1..{len(model.blocks)}")
        for name, p in model.named_parameters():
            top = name.startswith(("fc_norm", "head")) or (
                not cfg.head_only and name.startswith("blocks.") and int(name.split(".")[1]) >= start)
            p.requires_grad_(top)
        if not is_tokens(train_images):
            raise ValueError("partial fine-tuning (train_blocks > 0) trains on trunk tokens, got images")
    model.to(device)
    groups = _param_groups(model, cfg)
    opt = adamw(groups, cfg.lr, device)
    pw = torch.from_numpy(pos_weights(train_labels, cfg.max_pos_weight)).to(device)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=pw, reduction="none")
    store = None if start is not None else ImageStore(train_images, device)
    y_all = torch.from_numpy(np.asarray(train_labels, dtype=np.float32)).to(device)
    bs = min(cfg.batch_size, len(train_images))
    steps = cfg.steps
    if cfg.epochs:
        steps = max(cfg.eval_every, min(cfg.steps, int(math.ceil(cfg.epochs * len(train_images) / bs))))
    warmup = min(cfg.warmup_steps, max(1, steps // 10))
    it = batches(len(train_images), bs, rng)
    best = (-float("inf"), 0, copy.deepcopy(model.state_dict()))
    history, bad = [], 0
    progress = Progress(steps, desc, every=10 if start is None else 50)
    t0 = time.monotonic()
    step = 0
    pending = 0
    while step < steps:
        model.train()
        idx = next(it)
        if start is None:
            logits_in = store.batch(idx)
        else:
            logits_in = _inputs(train_images[idx], device)
        y = y_all[torch.from_numpy(idx).to(device)]
        known = ~torch.isnan(y)
        lr = cosine_lr(step, steps, cfg.lr, warmup)
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        with autocast(device, cfg.amp):
            logits = model(logits_in) if start is None else model.forward_from(logits_in, start)
        loss = (bce(logits.float(), torch.nan_to_num(y)) * known).sum() / known.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 3.0)
        opt.step()
        step += 1
        pending += len(idx)
        if step % progress.every == 0 or step == steps:  # reading the loss waits for the GPU
            progress.update(step, pending, loss=loss.item())
            pending = 0
        if step % cfg.eval_every == 0 or step == steps:
            p = predict(model, val_images, device=str(device), start=start)
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
    for p_ in model.parameters():
        p_.requires_grad_(True)
    model.cpu()  # callers export, save and predict on the CPU
    model.eval()
    return FinetuneResult(model, best[1], best[0], history, time.monotonic() - t0, start)
