"""Masked image modelling on unlabeled ECG images (``edge-ecg train pretrain``).

BEiT v1 masks ~40% of patches in blocks and predicts, for each masked patch, the code a
pretrained DALL-E dVAE tokenizer gives it. That tokenizer's weights are a download from
OpenAI's servers, which this build machine cannot reach (and training our own dVAE would cost
more compute than the whole pretraining budget), so the target here is the patch's own pixels,
as in SimMIM (Xie et al. 2022): BEiT's blockwise masking and learned mask token, a linear decoder
from each masked token to its 16x16x3 patch, and an L1 loss on masked patches only, with each
target patch normalised by its own mean and spread (MAE's ``norm_pix_loss``) so that the mostly
white background of an ECG image does not dominate the loss.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, asdict, field
from pathlib import Path

import numpy as np

from export.train.common import (
    ImageStore, Progress, adamw, autocast, batches, cosine_lr, resolve_device, seed_everything, set_threads,
)
from export.train.masking import MaskBank

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    size: str = "tiny"
    img_size: int = 224
    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    mask_ratio: float = 0.4
    seed: int = 0
    threads: int | None = 2
    checkpoint_every: int = 50
    device: str = "auto"       # "auto": the GPU when torch sees one, else the CPU
    amp: bool = True           # bf16 autocast on a GPU (ignored on the CPU)
    mask_bank: int = 4096      # block masks drawn once and sampled per batch (see masking.MaskBank)
    extra: dict = field(default_factory=dict)


def _mim_decoder(model):
    import torch.nn as nn

    p = model.cfg.patch_size
    return nn.Linear(model.cfg.embed_dim, p * p * model.cfg.in_chans)


def patchify(x, patch: int):
    """(N, C, H, W) -> (N, num_patches, patch*patch*C) in the patch embedding's row-major order."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // patch) * (w // patch), patch * patch * c)


def mim_loss(model, decoder, x, mask):
    """L1 between predicted and per-patch-normalised target pixels, over masked patches only."""
    tokens = model.forward_features(x, mask=mask)
    pred = decoder(tokens)
    target = patchify(x, model.cfg.patch_size)
    mean = target.mean(dim=-1, keepdim=True)
    std = target.std(dim=-1, keepdim=True)
    target = (target - mean) / (std + 1e-2)
    err = (pred - target).abs().mean(dim=-1)
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp(min=1.0)


def pretrain(images: np.ndarray, cfg: PretrainConfig, out_dir: Path | str, resume: bool = True) -> Path:
    """Pretrain a HeartBEiT backbone on ``images`` (uint8 (N, H, W, 3), or grey (N, H, W)).

    ``out_dir/last.pt`` holds model, decoder, optimiser, step and generator states every
    ``checkpoint_every`` steps; with ``resume`` a run continues from it (same result as an
    uninterrupted run up to the data order's generator state). ``out_dir/pretrained.pt`` is the
    backbone alone, in ``export.models.heartbeit``'s checkpoint format, for fine-tuning.
    """
    import torch
    from export.models.heartbeit import create_model, save_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    rng = seed_everything(cfg.seed)
    model = create_model(cfg.size, num_classes=0, img_size=cfg.img_size)
    decoder = _mim_decoder(model)
    model.to(device)
    decoder.to(device)
    params = list(model.parameters()) + list(decoder.parameters())
    opt = adamw(params, cfg.lr, device, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    step = 0
    last = out / "last.pt"
    history: list[dict] = []
    if images.shape[1] != cfg.img_size or images.shape[2] != cfg.img_size:
        raise ValueError(f"images are {images.shape[1:3]}, the model takes {cfg.img_size}x{cfg.img_size}")
    grid = (cfg.img_size // model.cfg.patch_size,) * 2
    bank = MaskBank(grid, cfg.mask_ratio, rng, cfg.mask_bank)
    if resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        decoder.load_state_dict(state["decoder"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history = state.get("history", [])
        log.info("resumed pretraining from %s at step %d", last, step)
    n = len(images)
    store = ImageStore(images, device)
    it = batches(n, min(cfg.batch_size, n), rng)
    every = max(5, cfg.steps // 50)
    progress = Progress(cfg.steps, f"pretrain ({device.type})", every=every)
    progress.update(step, 0)
    model.train()
    decoder.train()
    t_start = time.monotonic()
    running = torch.zeros((), device=device)
    since = 0
    while step < cfg.steps:
        idx = next(it)
        x = store.batch(idx)
        mask = torch.from_numpy(bank.sample(len(idx), rng)).to(device)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup_steps)
        with autocast(device, cfg.amp):
            loss = mim_loss(model, decoder, x, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        opt.step()
        step += 1
        running += loss.detach().float()
        since += 1
        if step % every == 0 or step == cfg.steps:  # reading the loss waits for the GPU: not every step
            mean = running.item() / since
            history.append({"step": step, "loss": round(mean, 5)})
            progress.update(step, len(idx) * since, loss=mean)
            running.zero_()
            since = 0
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            torch.save({"model": model.state_dict(), "decoder": decoder.state_dict(), "optimizer": opt.state_dict(),
                        "step": step, "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "history": history, "config": asdict(cfg)}, out / "last.tmp.pt")
            (out / "last.tmp.pt").replace(last)
    seconds = time.monotonic() - t_start
    model.cpu()
    extra = {"pretrain": asdict(cfg), "images": int(n), "final_loss": float(np.mean([h["loss"] for h in history[-3:]])),
             "seconds_this_run": round(seconds, 1), "device": _device_name(device)}
    path = save_checkpoint(model, out / "pretrained.pt", extra=extra)
    (out / "history.json").write_text(json.dumps(history))
    log.info("pretrained backbone -> %s (final loss %.4f)", path, extra["final_loss"])
    return path


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
