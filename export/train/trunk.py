"""Partial fine-tuning: the frozen lower blocks run once per image, the top blocks train on their output.

Full fine-tuning of even the tiny HeartBEiT costs a forward and a backward pass of every block
for every image of every step; on 2 shared CPU cores that is a few images per second. Freezing
all but the last ``train_blocks`` blocks (MAE's "partial fine-tuning"; He et al. 2022 found one
tuned block recovers most of the gap between a linear probe and full fine-tuning) lets the
frozen trunk run once per image: its tokens are cached on disk, and every fold, fraction and
seed of a study trains only the top blocks on them. The model that results is an ordinary
HeartBEiT (trunk weights from the backbone, top blocks trained), exported like any other.

The trunk must be the same for every fold that reads the cache, so a random-initialisation
trunk is drawn from its own fixed seed (``Backbone.seed``), not from each fold's seed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache") / "tokens"


@dataclass(frozen=True)
class Backbone:
    """Where the weights come from: a pretrained checkpoint, or random init of a size from a seed."""

    checkpoint: str | None = None
    size: str = "tiny"
    img_size: int = 224
    seed: int = 0

    def identity(self) -> str:
        if self.checkpoint:
            h = hashlib.sha256(Path(self.checkpoint).read_bytes()).hexdigest()[:16]
            return f"ckpt:{h}"
        return f"random:{self.size}:{self.img_size}:{self.seed}"

    def build(self, num_classes: int):
        """A fresh model with these weights and a new head of ``num_classes``."""
        import torch
        from export.models.heartbeit import create_model, load_checkpoint

        if self.checkpoint:
            model, _ = load_checkpoint(self.checkpoint)
            if model.cfg.img_size != self.img_size:
                raise ValueError(f"{self.checkpoint}: pretrained at {model.cfg.img_size} px, used at {self.img_size} px")
            model.reset_classifier(num_classes)
            return model
        state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        model = create_model(self.size, num_classes=0, img_size=self.img_size)  # the trunk: same draws whatever the head
        model.reset_classifier(num_classes)
        torch.random.set_rng_state(state)
        return model


def images_key(images: np.ndarray) -> str:
    """A digest of the pixels (so a cache never serves tokens of other images)."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(images)
    h.update(str(x.shape).encode())
    step = 1 << 24
    flat = x.reshape(-1)
    for i in range(0, flat.size, step):
        h.update(flat[i:i + step].tobytes())
    return h.hexdigest()[:20]


def trunk_tokens(backbone: Backbone, images: np.ndarray, stop: int, cache_dir: Path | str = DEFAULT_CACHE,
                 batch: int = 64, threads: int | None = 2, key: str | None = None) -> np.ndarray:
    """Tokens (N, 1 + P, D) float32 after the first ``stop`` blocks, cached as a read-only memmap."""
    import torch

    from export.train.common import set_threads, to_tensor

    key = hashlib.sha256(json.dumps([backbone.identity(), key or images_key(images), int(stop)]).encode()).hexdigest()[:24]
    folder = Path(cache_dir) / key
    final = folder / "tokens.npy"
    if final.is_file():
        return np.load(final, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    set_threads(threads)
    model = backbone.build(0).eval()
    n = len(images)
    tmp = folder / f"tokens.{os.getpid()}.tmp.npy"
    out = None
    t0 = time.monotonic()
    with torch.inference_mode():
        for i in range(0, n, batch):
            h = model.forward_trunk(to_tensor(images[i:i + batch]), stop).numpy()
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n,) + h.shape[1:])
            out[i:i + len(h)] = h
            if (i // batch) % 20 == 0:
                log.info("trunk tokens %d/%d (%.1f img/s) -> %s", i + len(h), n, (i + len(h)) / (time.monotonic() - t0), folder)
    out.flush()
    del out
    os.replace(tmp, final)
    (folder / "meta.json").write_text(json.dumps({"backbone": backbone.identity(), "stop": stop, "n": n,
                                                  "seconds": round(time.monotonic() - t0, 1)}))
    return np.load(final, mmap_mode="r")


def pooled_features(backbone: Backbone, tokens: np.ndarray, start: int, batch: int = 256, threads: int | None = 2) -> np.ndarray:
    """The backbone's pooled representation (N, D) (the input of the classification head: mean of
    the patch tokens after every block, ``fc_norm``) from trunk tokens cut after ``start`` blocks;
    what a linear probe trains on."""
    import torch

    from export.train.common import set_threads

    set_threads(threads)
    model = backbone.build(0).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(tokens), batch):
            h = torch.from_numpy(np.array(tokens[i:i + batch], dtype=np.float32))
            for blk in model.blocks[start:]:
                h = blk(h)
            out.append(model.forward_head(h[:, 1:], pre_logits=True).numpy())
    return np.concatenate(out)
