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
from export.datasets.pack import load_pack, save_pack
from export.train.config import dataclass_from, load_config
from export.train.pretrain import PretrainConfig, pretrain
from export.train.tasks import pretrain_corpus, shared_root

log = logging.getLogger(__name__)


def pretrain_images(root: Path, window_s: float, per_record: int, specs: dict, cache_dir: Path,
                    hop_s: float | None = None) -> np.ndarray:
    """All unlabeled windows rendered (each folder with its layout's spec from ``specs``), concatenated."""
    from edge_ecg.render import RenderSpec

    parts = []
    for windows, layout, leads in pretrain_corpus(root, window_s, per_record, hop_s):
        if layout not in specs:
            raise ConfigError("render", f"the pretraining config has no [render.{layout}] table")
        spec = RenderSpec.from_dict(specs[layout])
        parts.append(np.asarray(rendered(windows, spec, cache_dir, leads=leads)))
        log.info("pretraining corpus: %d %s windows (%s)", len(windows), layout, windows.refs[0].source)
    return np.concatenate(parts)


def config_images(cfg: dict) -> np.ndarray:
    """The pretraining corpus of a pretraining config, rendered (or read from the render cache)."""
    data = cfg.get("data", {})
    cache = Path(cfg.get("cache", {}).get("dir", ".cache/windows"))
    return pretrain_images(shared_root(data.get("shared")), float(data.get("window_s", 10.0)),
                           int(data.get("per_record", 20)), cfg.get("render", {}), cache,
                           hop_s=data.get("hop_s"))


def corpus_dir(cfg: dict) -> Path:
    return Path(cfg.get("corpus", {}).get("out", ".cache/corpus"))


def run_corpus(config_path: str | Path) -> dict:
    """``edge-ecg train corpus CONFIG``: render the config's sharded pretraining corpus (resumable)."""
    from export.datasets.corpus import build_corpus, corpus_config

    cfg = load_config(config_path)
    if "corpus" not in cfg:
        raise ConfigError(f"{config_path}: [corpus]", "this config has no [corpus] table")
    data = cfg.get("data", {})
    return build_corpus(corpus_config(cfg), shared_root(data.get("shared")), corpus_dir(cfg))


def run_pretrain(config_path: str | Path, resume: bool = True, steps: int | None = None,
                 pack: str | Path | None = None) -> Path:
    """``edge-ecg train pretrain CONFIG``: render the corpus (cached), pretrain, return the checkpoint.

    With ``pack`` (written by ``write_packs``) the images come from it instead of the records.
    """
    cfg = load_config(config_path)
    pcfg = dataclass_from(PretrainConfig, cfg.get("pretrain"), f"{config_path}: [pretrain]")
    if steps is not None:
        pcfg.steps = int(steps)
    t0 = time.monotonic()
    if pack:
        images = load_pack(pack).images
    elif "corpus" in cfg:
        images = corpus_dir(cfg)  # streamed shard by shard (``edge-ecg train corpus`` builds it)
    else:
        images = config_images(cfg)
    log.info("pretraining on %s (%.0f s to load/render)", images if isinstance(images, Path) else f"{len(images)} images",
             time.monotonic() - t0)
    out = Path(cfg.get("output", {}).get("dir", f".cache/pretrain/{pcfg.size}-{pcfg.img_size}"))
    return pretrain(images, pcfg, out, resume=resume)


def pretrain_summary(config_path: str | Path) -> dict:
    """What a pretraining config produced, for ``docs/results``: the corpus (images and render
    seconds per part, from its manifest and ``parts/``) and the backbone (steps, images seen, loss
    history, world size, seconds of its last run, from the checkpoint and ``history.json``)."""
    import json

    from export.datasets.corpus import read_manifest
    from export.models.heartbeit import load_checkpoint

    cfg = load_config(config_path)
    pcfg = dataclass_from(PretrainConfig, cfg.get("pretrain"), f"{config_path}: [pretrain]")
    out: dict = {"config": Path(config_path).name}
    if "corpus" in cfg:
        root = corpus_dir(cfg)
        manifest = read_manifest(root)
        parts = {}
        for f in sorted((root / "parts").glob("*.json")):
            d = json.loads(f.read_text())
            parts[d["part"]] = {"images": int(d["images"]), "seconds": float(d.get("seconds", 0.0))}
        out["corpus"] = {"images": int(manifest["images"]), "shards": len(manifest["shards"]), "parts": parts,
                         "render_seconds": round(sum(p["seconds"] for p in parts.values()), 1),
                         "synthetic": manifest.get("synthetic"),
                         "layouts": {k: v["spec"] for k, v in manifest["layouts"].items()}}
    folder = Path(cfg.get("output", {}).get("dir", f".cache/pretrain/{pcfg.size}-{pcfg.img_size}"))
    ckpt = folder / "pretrained.pt"
    if ckpt.is_file():
        _, extra = load_checkpoint(ckpt)
        hist_path = folder / "history.json"
        history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
        out["pretraining"] = {**{k: extra.get(k) for k in ("images_seen", "world_size", "final_loss", "seconds_this_run", "device")},
                              "config": extra.get("pretrain", {}), "history": history,
                              "first_loss": history[0]["loss"] if history else None}
    return out


def pack_name(config_path: str | Path) -> str:
    return f"{Path(config_path).stem}.pack"


def write_packs(config_paths, out_dir: str | Path, img_size: int | None = None) -> list[Path]:
    """``edge-ecg train pack``: each config's rendered windows (and labels, for a bundle config) in
    one portable file under ``out_dir``, so a GPU machine without the records or wfdb can train.
    ``img_size`` renders a bundle config at another square size (e.g. 224 px for a GPU build)."""
    from export.train.build import task_images

    written = []
    for path in config_paths:
        cfg = load_config(path)
        if img_size and "render" in cfg and "pretrain" not in cfg:
            cfg["render"].update(width=int(img_size), height=int(img_size))
        if "pretrain" in cfg:
            images, spec, task = config_images(cfg), cfg.get("render", {}), None
        else:
            spec_obj, task, images = task_images(cfg)
            spec = spec_obj.to_dict()
        target = save_pack(Path(out_dir) / pack_name(path), np.asarray(images), spec, task,
                           meta={"config": Path(path).name, "windows": int(len(images))})
        log.info("%s: %d windows -> %s (%.1f MB)", path, len(images), target, target.stat().st_size / 1e6)
        written.append(target)
    return written


def prepared_from_pack(pack: str | Path) -> tuple:
    """``(spec, TaskData, images)`` of a bundle config's pack, as ``train_and_evaluate`` takes them."""
    from edge_ecg.render import RenderSpec

    p = load_pack(pack)
    if p.task is None:
        raise ConfigError(pack, "this pack holds a pretraining corpus, not a task's labelled windows")
    return RenderSpec.from_dict(p.spec), p.task, p.images
