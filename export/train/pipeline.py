"""Config file -> pretrained backbone, and config file -> evaluated, exported bundle.

These are the library functions behind ``edge-ecg train pretrain|finetune|bundle``; each step
caches its expensive output under ``.cache/`` so a rerun continues instead of starting over.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge_ecg.errors import ConfigError

from export.datasets.cache import rendered
from export.train.config import dataclass_from, load_config
from export.train.pretrain import PretrainConfig, pretrain
from export.train.tasks import pretrain_corpus, shared_root

log = logging.getLogger(__name__)


def pretrain_images(root: Path, window_s: float, per_record: int, specs: dict, cache_dir: Path) -> np.ndarray:
    """All unlabeled windows rendered (each folder with its layout's spec from ``specs``), concatenated."""
    from edge_ecg.render import RenderSpec

    parts = []
    for windows, layout, leads in pretrain_corpus(root, window_s, per_record):
        if layout not in specs:
            raise ConfigError("render", f"the pretraining config has no [render.{layout}] table")
        spec = RenderSpec.from_dict(specs[layout])
        parts.append(np.asarray(rendered(windows, spec, cache_dir, leads=leads)))
        log.info("pretraining corpus: %d %s windows (%s)", len(windows), layout, windows.refs[0].source)
    return np.concatenate(parts)


def run_pretrain(config_path: str | Path, resume: bool = True, steps: int | None = None) -> Path:
    """``edge-ecg train pretrain CONFIG``: render the corpus (cached), pretrain, return the checkpoint."""
    cfg = load_config(config_path)
    data = cfg.get("data", {})
    pcfg = dataclass_from(PretrainConfig, cfg.get("pretrain"), f"{config_path}: [pretrain]")
    if steps is not None:
        pcfg.steps = int(steps)
    cache = Path(cfg.get("cache", {}).get("dir", ".cache/windows"))
    t0 = time.monotonic()
    images = pretrain_images(shared_root(data.get("shared")), float(data.get("window_s", 10.0)),
                             int(data.get("per_record", 20)), cfg.get("render", {}), cache)
    log.info("pretraining on %d images (%.0f s to load/render)", len(images), time.monotonic() - t0)
    out = Path(cfg.get("output", {}).get("dir", f".cache/pretrain/{pcfg.size}-{pcfg.img_size}"))
    return pretrain(images, pcfg, out, resume=resume)
