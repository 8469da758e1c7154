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
    Progress, adamw, autocast, cosine_lr, resolve_device, seed_everything, set_threads,
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


def _mim_module(model, decoder):
    """Backbone + decoder as one module returning the loss, so DDP synchronises both at once."""
    import torch.nn as nn

    class _MIM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.decoder = model, decoder

        def forward(self, x, mask):
            return mim_loss(self.model, self.decoder, x, mask)

    return _MIM()


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Read torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    import os

    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device_name: str = "auto") -> tuple[DistInfo, object]:
    """Join the torchrun process group when there is one: NCCL on CUDA, gloo on the CPU. Returns
    (rank info, this rank's device); alone, (rank 0 of 1, the resolved device)."""
    import torch
    import torch.distributed as dist

    info = dist_info()
    device = resolve_device(device_name)
    if not info.enabled:
        return info, device
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def _as_stream(images, info: DistInfo, seed: int, start_images: int):
    """A ``CorpusStream`` over a corpus folder, or an ``ArrayStream`` over images in memory."""
    from export.datasets.corpus import ArrayStream, CorpusStream

    if isinstance(images, (str, Path)):
        return CorpusStream(Path(images), info.rank, info.world, seed, start_images=start_images)
    return ArrayStream(images, info.rank, info.world, seed, start_images=start_images)


def pretrain(images, cfg: PretrainConfig, out_dir: Path | str, resume: bool = True) -> Path:
    """Pretrain a HeartBEiT backbone on ``images``: uint8 (N, H, W, 3) or grey (N, H, W) in memory,
    or the folder of a sharded corpus (``export.datasets.corpus``), which is streamed.

    Under ``torchrun`` every rank joins one process group (gloo on the CPU, NCCL on GPUs), the
    model is wrapped in DistributedDataParallel, each rank reads its own shards and takes
    ``batch_size / world`` images per step (the global batch, hence the schedule, does not depend
    on the world size), and rank 0 writes the checkpoints. ``out_dir/last.pt`` holds model,
    decoder, optimiser, step, images consumed and the loss history every ``checkpoint_every``
    steps; with ``resume`` a run continues from it, with any world size: weights, optimiser and
    schedule continue exactly; the data stream restarts at the epoch and place the images
    consumed point to, and the masks are drawn afresh from (seed, rank, step).
    ``out_dir/pretrained.pt`` is the backbone alone, in ``export.models.heartbeit``'s checkpoint
    format, for fine-tuning.
    """
    import torch
    from export.models.heartbeit import create_model, save_checkpoint

    out = Path(out_dir)
    info, device = init_distributed(cfg.device)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
    set_threads(cfg.threads)
    seed_everything(cfg.seed)  # identical initial weights on every rank
    model = create_model(cfg.size, num_classes=0, img_size=cfg.img_size)
    for p in model.fc_norm.parameters():  # pooling's norm is not on the MIM path; DDP needs every trained
        p.requires_grad_(False)           # parameter to get a gradient
    decoder = _mim_decoder(model)
    model.to(device)
    decoder.to(device)
    params = [p for p in list(model.parameters()) + list(decoder.parameters()) if p.requires_grad]
    opt = adamw(params, cfg.lr, device, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    step, seen = 0, 0
    last = out / "last.pt"
    history: list[dict] = []
    if resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        decoder.load_state_dict(state["decoder"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        seen = int(state.get("images_seen", step * cfg.batch_size))
        history = state.get("history", [])
        if info.main:
            log.info("resumed pretraining from %s at step %d (%d images seen; was world size %s, now %d)",
                     last, step, seen, state.get("world_size", 1), info.world)
    rng = np.random.default_rng([cfg.seed, info.rank, step])
    grid = (cfg.img_size // model.cfg.patch_size,) * 2
    bank = MaskBank(grid, cfg.mask_ratio, np.random.default_rng([cfg.seed, info.rank]), cfg.mask_bank)
    per_rank = max(1, cfg.batch_size // info.world)
    stream = _as_stream(images, info, cfg.seed, seen).batches(per_rank)
    first = next(stream)
    if first.shape[1] != cfg.img_size or first.shape[2] != cfg.img_size:
        raise ValueError(f"images are {first.shape[1:3]}, the model takes {cfg.img_size}x{cfg.img_size}")
    net = _mim_module(model, decoder)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    every = max(5, cfg.steps // 50)
    progress = Progress(cfg.steps, f"pretrain ({device.type} x{info.world})", every=every)
    if info.main:
        progress.update(step, 0)
    net.train()
    t_start = time.monotonic()
    running = torch.zeros((), device=device)
    since = 0
    batch = first
    while step < cfg.steps:
        x = _to_device(batch, device)
        mask = torch.from_numpy(bank.sample(len(batch), rng)).to(device)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup_steps)
        with autocast(device, cfg.amp):
            loss = net(x, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        opt.step()
        step += 1
        seen += per_rank * info.world
        running += loss.detach().float()
        since += 1
        if step % every == 0 or step == cfg.steps:  # reading the loss waits for the GPU: not every step
            mean = running.item() / since
            history.append({"step": step, "loss": round(mean, 5)})
            if info.main:
                progress.update(step, per_rank * info.world * since, loss=mean)
            running.zero_()
            since = 0
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            if info.main:
                torch.save({"model": model.state_dict(), "decoder": decoder.state_dict(), "optimizer": opt.state_dict(),
                            "step": step, "images_seen": seen, "world_size": info.world,
                            "history": history, "config": asdict(cfg)}, out / "last.tmp.pt")
                (out / "last.tmp.pt").replace(last)
            _barrier(info)
        if step < cfg.steps:
            batch = next(stream)
    seconds = time.monotonic() - t_start
    path = out / "pretrained.pt"
    if info.main:
        model.cpu()
        extra = {"pretrain": asdict(cfg), "images": int(getattr(_as_stream(images, DistInfo(), 0, 0), "total", 0)),
                 "images_seen": int(seen), "world_size": info.world,
                 "final_loss": float(np.mean([h["loss"] for h in history[-3:]])) if history else float("nan"),
                 "seconds_this_run": round(seconds, 1), "device": _device_name(device)}
        save_checkpoint(model, path, extra=extra)
        (out / "history.json").write_text(json.dumps(history))
        log.info("pretrained backbone -> %s (final loss %.4f)", path, extra["final_loss"])
    _barrier(info)
    return path


def _to_device(batch: np.ndarray, device):
    """uint8 images -> the model input on ``device`` (converted there on a GPU, as ``ImageStore``)."""
    import torch

    from export.train.common import model_input_torch, to_tensor

    if device.type == "cpu":
        return to_tensor(batch)
    return model_input_torch(torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True))


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
