"""A task's rendered windows in one portable file, to train where the records are not.

A GPU box for a training run often has torch but neither the ECG archive nor wfdb. A pack holds
what training reads after ``export.datasets.cache.rendered``: the images (one grey channel, the
renderer's three are equal, lzma-compressed: an ECG image is mostly white paper, so a 224 px
window packs to about 2 KB), the task's windows and labels, and the spec they were rendered
with. The receiving side needs numpy and the standard library to open it.

A pack is a pickle, so open only packs you made (``edge-ecg train pack`` writes them).
"""

from __future__ import annotations

import lzma
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_ecg.errors import ConfigError

FORMAT = "edge-ecg-pack/1"


@dataclass
class Pack:
    """Grey uint8 images (N, H, W) and whatever describes them (``task``: a ``TaskData`` or None)."""

    images: np.ndarray
    spec: dict
    task: Any = None
    meta: dict | None = None


def grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) renderer output -> (N, H, W); refuses images whose channels differ (a spec with
    a coloured grid would lose its colour)."""
    x = np.asarray(images)
    if x.ndim == 3:
        return x
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) images, got {x.shape}")
    g = np.ascontiguousarray(x[..., 0])
    for c in (1, 2):
        if not np.array_equal(g, x[..., c]):
            raise ValueError("the images are not grey (channels differ); a pack stores one channel")
    return g


def save_pack(path: str | Path, images: np.ndarray, spec: dict, task: Any = None, meta: dict | None = None) -> Path:
    """Write ``images`` (+ what describes them) to ``path`` atomically; returns the path."""
    path = Path(path)
    g = grey(images)
    blob = lzma.compress(g.tobytes(), preset=6)
    payload = {"format": FORMAT, "shape": g.shape, "spec": dict(spec), "task": task, "meta": meta or {}, "images": blob}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(payload, fh, protocol=4)
    tmp.replace(path)
    return path


def load_pack(path: str | Path) -> Pack:
    """Read a pack; a file that is not one is a ConfigError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "pack not found (write it with `edge-ecg train pack`)") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as exc:
        raise ConfigError(path, f"not a readable edge-ecg pack ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(path, f"not an {FORMAT} file")
    try:
        raw = bytearray(lzma.decompress(payload["images"]))  # writable: torch.from_numpy wants that
        images = np.frombuffer(raw, dtype=np.uint8).reshape(payload["shape"])
    except (lzma.LZMAError, ValueError) as exc:
        raise ConfigError(path, f"images field is damaged ({exc})") from None
    return Pack(images, payload["spec"], payload["task"], payload["meta"])
