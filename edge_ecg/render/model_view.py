"""``render``: a window to the uint8 image a model sees, and ``to_model_input`` for its tensor."""

from __future__ import annotations

import numpy as np

from edge_ecg.records.record import Record
from edge_ecg.render.paper import paper
from edge_ecg.render.raster import band_traces, coverage, plan
from edge_ecg.render.spec import STANDARD_SPEC, RenderSpec

# HeartBEiT's fine-tuning normalisation (Vaid et al. 2023): mean 0.5, std 0.5 per channel.
MEAN = 0.5
STD = 0.5


def render(window: Record, spec: RenderSpec = STANDARD_SPEC) -> np.ndarray:
    """The first ``spec.seconds`` of ``window`` as a uint8 (H, W, 3) image, black ink on white.

    A window shorter than ``spec.seconds`` leaves the rest blank (like a gap). Leads III, aVR,
    aVL and aVF are derived from I and II when the layout needs them and the window lacks them.
    A lead the layout needs and cannot get raises ``RecordError`` naming the window.
    """
    p = plan(spec, float(window.fs), tuple(window.leads), window.source or window.name)
    cov = coverage(p, band_traces(p, window.signals), spec.px_per_uv, spec.line_width, spec.center)
    ink = (255.5 - 255.0 * cov).astype(np.uint8)
    if not spec.grid:
        return np.repeat(ink[:, :, None], 3, axis=2)
    return np.minimum(paper(spec.width, spec.height, spec.px_per_mm), ink[:, :, None])


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) or (H, W, 3) to float32 (N, 3, H, W) = (x / 255 - 0.5) / 0.5."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3) or (H, W, 3), got shape {x.shape}")
    out = x.transpose(0, 3, 1, 2).astype(np.float32)
    out *= 1.0 / (255.0 * STD)
    out -= MEAN / STD
    return np.ascontiguousarray(out)
