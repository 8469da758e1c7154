"""Rendered windows on disk, so that training epochs never re-render.

Images are rendered once through ``edge_ecg.render.render`` with the bundle's ``RenderSpec`` and
stored as one uint8 ``.npy`` (N, H, W, 3) that training memory-maps. The cache key hashes
everything the pixels depend on: each window (record file name, size, sample range), the spec,
the leads, and the source code of ``edge_ecg.render`` itself, so a renderer change can never
serve stale images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from export.datasets.windows import WindowSet, read_window

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(".cache") / "windows"


def _renderer_fingerprint() -> str:
    import edge_ecg.render as render_pkg

    h = hashlib.sha256()
    root = Path(render_pkg.__file__).parent
    for p in sorted(root.rglob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_key(windows: WindowSet, spec, leads: Sequence[str] | None = None) -> str:
    """A hex digest of (windows, spec, leads, renderer source)."""
    sizes: dict[str, int] = {}
    items = []
    for r in windows.refs:
        if r.path not in sizes:
            try:
                sizes[r.path] = os.stat(r.path).st_size
            except OSError:
                sizes[r.path] = -1
        items.append([Path(r.path).name, sizes[r.path], r.start, r.stop])
    payload = json.dumps({"windows": items, "spec": spec.to_dict(), "leads": list(leads or spec.leads),
                          "renderer": _renderer_fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def rendered(windows: WindowSet, spec, cache_dir: Path | str = DEFAULT_CACHE, leads: Sequence[str] | None = None,
             progress: bool = True) -> np.ndarray:
    """The images of ``windows`` as a read-only memmap (N, H, W, 3) uint8, rendering what is missing."""
    from edge_ecg.records import read_record
    from edge_ecg.render import render

    leads = tuple(leads or spec.leads)
    key = cache_key(windows, spec, leads)
    folder = Path(cache_dir) / key
    final = folder / "images.npy"
    if final.is_file():
        return np.load(final, mmap_mode="r")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"images.{os.getpid()}.tmp.npy"
    out = None
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(windows.refs):
        by_path[r.path].append(i)
    t0, done = time.monotonic(), 0
    for path, idxs in by_path.items():
        rec = read_record(path)
        for i in idxs:
            img = render(read_window(windows.refs[i], leads, rec), spec)
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(windows),) + img.shape)
            out[i] = img
            done += 1
        if progress:
            rate = done / max(1e-9, time.monotonic() - t0)
            log.info("rendered %d/%d windows (%.1f/s) -> %s", done, len(windows), rate, folder)
    if out is None:
        raise ValueError("no windows to render")
    out.flush()
    del out
    os.replace(tmp, final)
    (folder / "meta.json").write_text(json.dumps({"spec": spec.to_dict(), "leads": list(leads), "n": len(windows),
                                                  "summary": windows.summary()}, indent=1, default=str))
    return np.load(final, mmap_mode="r")
