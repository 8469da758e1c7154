"""Calibration and check windows: rendered real ECG windows, chosen reproducibly and hashed.

INT8 scales are only as good as the activations they were measured on, so calibration uses the
same renderer and RenderSpec as serving, over many records (not many windows of one record).
The choice is a pure function of (sorted record list, spec, window length, count, seed); its
sha256 (over window identities and image bytes) goes into the bundle provenance so anyone can
tell whether two bundles were calibrated on the same windows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowSet:
    """Rendered windows: ``images`` uint8 (N,H,W,3) and ``ids`` ("record:start:stop" in samples)."""

    images: np.ndarray
    ids: tuple[str, ...]
    seed: int
    sources: tuple[str, ...]

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(list(self.ids)).encode())
        h.update(np.ascontiguousarray(self.images).tobytes())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.ids)

    def provenance(self) -> dict:
        return {"n": len(self), "seed": self.seed, "sha256": self.sha256, "sources": list(self.sources),
                "records": len({i.rsplit(":", 2)[0] for i in self.ids})}


def record_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Record files under ``paths`` (files or folders, recursive), sorted so the choice is reproducible."""
    from edge_ecg.records import find_records

    return sorted(Path(p) for p in find_records(paths))


def select_windows(paths: Sequence[str | Path], spec, n: int, window_s: float | None = None,
                   seed: int = 0, max_per_record: int | None = None) -> WindowSet:
    """About ``n`` rendered windows spread evenly over every readable record under ``paths``.

    Each record contributes up to ceil(n / records) non-overlapping windows at random offsets
    (``seed``); records that cannot be read or rendered with ``spec`` (missing leads) are skipped
    with a log line. Fewer than ``n`` come back only when the data do not hold more.
    """
    from edge_ecg.errors import InputError
    from edge_ecg.records import read_record
    from edge_ecg.render import render

    window_s = float(window_s or spec.seconds)
    files = record_paths(paths)
    if not files:
        raise InputError(", ".join(map(str, paths)), "no ECG records found for calibration")
    rng = np.random.default_rng(seed)
    per_record = max_per_record or max(1, math.ceil(n / len(files)))
    images: list[np.ndarray] = []
    ids: list[str] = []
    for f in files:
        try:
            rec = read_record(f)
        except InputError as exc:
            log.info("calibration: skipped %s (%s)", f, exc)
            continue
        length = int(round(window_s * rec.fs))
        slots = rec.n_samples // length
        if slots < 1:
            continue
        chosen = np.sort(rng.choice(slots, size=min(per_record, slots), replace=False))
        for s in chosen:
            start = int(s) * length
            window = rec.slice(start, start + length)
            if not np.isfinite(window.signals).all():
                continue
            try:
                images.append(render(window, spec))
            except InputError as exc:
                log.info("calibration: skipped %s (%s)", f, exc)
                break
            ids.append(f"{f.parent.name}/{f.stem}:{start}:{start + length}")
    if not ids:
        raise InputError(", ".join(map(str, paths)), f"no record could be rendered with layout {spec.layout!r}")
    if len(ids) > n:
        keep = np.sort(rng.choice(len(ids), size=n, replace=False))
        images = [images[i] for i in keep]
        ids = [ids[i] for i in keep]
    sources = tuple(sorted({Path(p).name for p in paths}))
    ws = WindowSet(np.stack(images), tuple(ids), seed, sources)
    log.info("selected %d windows from %d records (%s), sha256 %s", len(ws), len({i.rsplit(':', 2)[0] for i in ids}),
             ", ".join(sources), ws.sha256[:12])
    return ws
