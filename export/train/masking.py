"""BEiT's blockwise masking of image patches, for masked image modelling.

BEiT v1 (Bao et al. 2021, Algorithm 1) masks rectangular blocks of patches (at least 16 patches,
aspect ratio between 0.3 and 1/0.3) until about 40% of patches are masked. Blocks, unlike
independent random patches, force the model to reason over whole waveform segments instead of
interpolating from neighbours. This is a direct transcription of that algorithm in numpy
(the reference lives in the BEiT repository's ``masking_generator.py``, which is not a package).
"""

from __future__ import annotations

import math

import numpy as np


def block_mask(grid: tuple[int, int], ratio: float = 0.4, rng: np.random.Generator | None = None,
               min_block: int = 4, max_block: int | None = None, min_aspect: float = 0.3) -> np.ndarray:
    """A bool mask (rows, cols) with about ``ratio`` of the patches set, in rectangular blocks.

    ``min_block`` is 16 in BEiT for a 14x14 grid; smaller grids need smaller blocks, so it is a
    parameter (the default 4 suits the 7x7..14x14 grids of the tiny model).
    """
    rng = rng or np.random.default_rng()
    rows, cols = grid
    n = rows * cols
    target = int(round(ratio * n))
    max_block = max_block or max(min_block, target)
    mask = np.zeros((rows, cols), dtype=bool)
    count = 0
    log_aspect = (math.log(min_aspect), math.log(1.0 / min_aspect))
    stall = 0
    while count < target and stall < 50:
        remaining = target - count
        area = rng.uniform(min_block, max(min_block, min(max_block, remaining)) + 1e-9)
        aspect = math.exp(rng.uniform(*log_aspect))
        h = int(round(math.sqrt(area * aspect)))
        w = int(round(math.sqrt(area / aspect)))
        if not (1 <= h < rows and 1 <= w < cols):
            stall += 1
            continue
        top = int(rng.integers(0, rows - h + 1))
        left = int(rng.integers(0, cols - w + 1))
        block = mask[top:top + h, left:left + w]
        new = int(h * w - block.sum())
        if 0 < new <= remaining:
            block[...] = True
            count += new
            stall = 0
        else:
            stall += 1
    if count < target:  # fill the last few patches at random so every mask has the same ratio
        free = np.flatnonzero(~mask.ravel())
        mask.ravel()[rng.choice(free, target - count, replace=False)] = True
    return mask


def batch_masks(n: int, grid: tuple[int, int], ratio: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` masks flattened to (n, rows*cols), the shape ``forward_features(mask=...)`` takes."""
    return np.stack([block_mask(grid, ratio, rng).ravel() for _ in range(n)])


class MaskBank:
    """Block masks drawn once and sampled per batch.

    Drawing one BEiT mask in Python takes tens of microseconds; a batch of 256 costs more than a
    GPU spends on the whole training step of a tiny model. A bank of a few thousand masks, drawn
    from the run's seeded generator, keeps the masking distribution and frees the step.
    """

    def __init__(self, grid: tuple[int, int], ratio: float, rng: np.random.Generator, size: int = 4096) -> None:
        self.masks = batch_masks(size, grid, ratio, rng)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.masks[rng.integers(0, len(self.masks), n)]
