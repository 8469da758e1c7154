"""What pretraining and fine-tuning share: seeds, threads, batches from the image cache, progress."""

from __future__ import annotations

import logging
import random
import sys
import time
from typing import Iterator

import numpy as np

from edge_ecg.errors import ConfigError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch; returns the numpy generator the caller should draw from."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_threads(threads: int | None) -> None:
    """Cap torch's intra-op threads (the build machine's cores are shared)."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def to_tensor(images: np.ndarray):
    """uint8 (N, H, W, 3) images, or grey (N, H, W), -> the float32 (N, 3, H, W) model input, via
    the renderer's own ``to_model_input`` so training and serving normalise identically."""
    import torch
    from edge_ecg.render import to_model_input

    x = np.asarray(images)
    if x.ndim == 3:  # grey, as a portable pack stores them: the renderer's three channels are equal
        x = np.repeat(x[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(to_model_input(x)))


def resolve_device(name: str | None = "auto"):
    """``auto`` is the first CUDA GPU when torch sees one, else the CPU; asking for CUDA where there
    is none is a ConfigError, not a silent fall-back to hours on the CPU."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} was asked for, but torch sees no CUDA device")
    return torch.device(name)


def model_input_torch(x_uint8):
    """``to_model_input`` in torch, for images already on a GPU: uint8 (N, H, W[, 3]) -> float32
    (N, 3, H, W), the same float32 operations in the same order (bit-identical, see the tests)."""
    import torch
    from edge_ecg.render.model_view import MEAN, STD

    x = x_uint8 if x_uint8.ndim == 4 else x_uint8.unsqueeze(-1).expand(*x_uint8.shape, 3)
    out = x.permute(0, 3, 1, 2).to(torch.float32)
    out = out * np.float32(1.0 / (255.0 * STD))
    return (out - np.float32(MEAN / STD)).contiguous()


class ImageStore:
    """Training images where the model runs. On the CPU they stay a (memory-mapped) numpy array
    converted per batch by ``to_tensor``; on a GPU the uint8 pixels are uploaded once (a quarter of
    float32's size; grey images a third of that) and each batch is indexed and converted there, so
    the GPU never waits on host copies."""

    def __init__(self, images: np.ndarray, device) -> None:
        import torch

        self.device = device
        self.n = len(images)
        self.on_device = device.type != "cpu"
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device) if self.on_device else images

    def __len__(self) -> int:
        return self.n

    def batch(self, idx: np.ndarray):
        import torch

        if self.on_device:
            return model_input_torch(self.images[torch.from_numpy(np.asarray(idx)).to(self.device)])
        return to_tensor(self.images[idx])


def autocast(device, enabled: bool = True):
    """bf16 autocast on a GPU (the tensor cores' format; no loss scaling needed), a no-op on the CPU
    so CPU runs stay float32 and reproducible."""
    import contextlib
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def adamw(params, lr: float, device, **kw):
    """AdamW, the fused CUDA kernel on a GPU (one launch per step instead of several per tensor)."""
    import torch

    if device.type == "cuda":
        kw["fused"] = True
    return torch.optim.AdamW(params, lr=lr, **kw)


def batches(n: int, batch_size: int, rng: np.random.Generator, weights: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Endless shuffled index batches (sorted within a batch so memmap reads are sequential-ish)."""
    while True:
        if weights is None:
            order = rng.permutation(n)
        else:
            p = np.asarray(weights, dtype=np.float64)
            order = rng.choice(n, size=n, replace=True, p=p / p.sum())
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield np.sort(order[i:i + batch_size])


class Progress:
    """A one-line progress bar with loss and throughput (tqdm is not a dependency here).

    On a terminal it redraws in place; in a log file it prints a line every ``every`` steps.
    """

    def __init__(self, total: int, desc: str, every: int = 10, stream=None) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()
        self.images = 0
        self.first_step: int | None = None

    def update(self, step: int, images: int, **values: float) -> None:
        self.images += images
        if not self.tty and step % self.every and step != self.total:
            return
        dt = max(1e-9, time.monotonic() - self.t0)
        if self.first_step is None:
            self.first_step = step  # a resumed run starts past 0
        rate = self.images / dt
        done = step - self.first_step
        eta = (self.total - step) * dt / done if done > 0 else float("nan")
        frac = step / max(1, self.total)
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        vals = " ".join(f"{k}={v:.4f}" for k, v in values.items())
        line = f"{self.desc} [{bar}] {step}/{self.total} {vals} {rate:.1f} img/s eta {eta:.0f}s"
        if self.tty:
            self.stream.write("\r" + line)
            if step == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warmup then cosine decay to 1% of ``base``."""
    import math

    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))
