"""``Classifier``: ECG windows -> per-label probabilities, through a bundle's renderer and a runtime.

The renderer is the contract between training and serving, so the classifier always renders
with the bundle's own RenderSpec; callers hand it records, never images of their own making.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edge_ecg.bundle import Bundle
from edge_ecg.runtimes import Runtime


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


class Classifier:
    """Render with ``bundle.spec``, run ``runtime`` in batches of ``batch``, sigmoid per label."""

    def __init__(self, bundle: Bundle, runtime: Runtime, batch: int = 8) -> None:
        self.bundle = bundle
        self.runtime = runtime
        self.batch = max(1, int(batch))
        self.spec = bundle.spec

    @property
    def labels(self) -> tuple[str, ...]:
        return self.bundle.label_names

    def render(self, windows: Sequence) -> np.ndarray:
        """Select the bundle's input leads (the factory's own function), then render with its spec."""
        from edge_ecg.records.lead_select import select_leads
        from edge_ecg.render import render

        leads = self.bundle.input_leads
        return np.stack([render(select_leads(w, leads), self.spec) for w in windows])

    def predict_images(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N,H,W,3) images already rendered with ``bundle.spec`` -> probabilities (N, labels):
        calibrated where the bundle carries a calibration per label (``Bundle.probabilities``)."""
        from edge_ecg.render import to_model_input

        x = to_model_input(images)
        out = [self.runtime.run(x[i:i + self.batch]) for i in range(0, len(x), self.batch)]
        return self.bundle.probabilities(np.concatenate(out)) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, windows: Sequence) -> np.ndarray:
        """Records (each one window) -> float32 probabilities (N, n_labels)."""
        if len(windows) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.predict_images(self.render(windows))

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Boolean (N, labels): probability at or above each label's default threshold."""
        return probs >= self.bundle.thresholds[None, :]
