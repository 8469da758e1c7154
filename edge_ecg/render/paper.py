"""ECG paper backgrounds: the 1 mm and 5 mm grid, drawn once per spec and cached.

The grid is anti-aliased the same way as traces (coverage of a 1 px wide line over each pixel),
so lines that fall between pixels stay evenly weighted instead of jumping.
"""

from __future__ import annotations

import functools

import numpy as np

PAPER = np.array([255, 255, 255], dtype=np.float32)
MINOR = np.array([250, 206, 206], dtype=np.float32)  # 1 mm
MAJOR = np.array([236, 140, 140], dtype=np.float32)  # 5 mm
MIN_MINOR_SPACING_PX = 3.0  # below this the 1 mm grid is a smear, so it is left out


def _line_profile(n: int, spacing: float, thickness: float = 1.0) -> np.ndarray:
    """Coverage of lines every ``spacing`` px (starting at 0.5) over ``n`` pixels."""
    centres = np.arange(0.5, n + spacing, spacing)
    edges = np.arange(n, dtype=np.float64)
    lo = centres[:, None] - thickness / 2.0
    hi = centres[:, None] + thickness / 2.0
    overlap = np.clip(np.minimum(hi, edges + 1.0) - np.maximum(lo, edges), 0.0, 1.0)
    return overlap.max(axis=0) if len(centres) else np.zeros(n)


@functools.lru_cache(maxsize=16)
def paper(width: int, height: int, px_per_mm: float) -> np.ndarray:
    """uint8 (height, width, 3) grid paper; read-only because it is shared by every render."""
    img = np.broadcast_to(PAPER, (height, width, 3)).astype(np.float32)
    layers = []
    if px_per_mm >= MIN_MINOR_SPACING_PX:
        layers.append((px_per_mm, MINOR))
    layers.append((5.0 * px_per_mm, MAJOR))
    for spacing, colour in layers:
        a = np.maximum(_line_profile(width, spacing)[None, :], _line_profile(height, spacing)[:, None])[:, :, None]
        img = img * (1.0 - a) + colour * a
    out = np.round(img).astype(np.uint8)
    out.setflags(write=False)
    return out
