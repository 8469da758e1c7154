"""A bundle as the daemon runs it: its classifier, window and hop in samples, thresholds and smoothing.

Model findings become alarm conditions ``model:<label>`` when the label's smoothed probability
(mean over the last ``smoothing`` windows) reaches its threshold (bundle default, overridden in
config); labels whose bundle priority is ``none`` are findings only (logged, never alarmed).
A triage bundle instead judges a classical alarm: its first label (or ``triage_label``) is the
probability that the alarm is true.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_ecg.errors import BundleError, ConfigError
from edge_ecg.service.config import BundleConfig

log = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    cfg: BundleConfig
    bundle: Any
    classifier: Any
    backend: str
    thresholds: np.ndarray
    priorities: tuple[str, ...]
    window_s: float
    hop_s: float
    triage_index: int = 0
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1))

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.bundle.label_names)

    def smooth(self, probs: np.ndarray) -> np.ndarray:
        self.history.append(np.asarray(probs, dtype=np.float32))
        return np.mean(np.stack(self.history), axis=0)

    def required_leads(self) -> tuple[str, ...]:
        spec = self.bundle.spec
        return tuple(spec.panel_leads) if spec.layout == "12lead" or spec.leads else ()


def load_slot(cfg: BundleConfig, origin: str = "config") -> ModelSlot:
    """Load and verify a bundle and open its runtime; ``BundleError`` names the file if verification fails."""
    from edge_ecg.bundle import load_bundle
    from edge_ecg.inference import Classifier
    from edge_ecg.runtimes import open_runtime

    bundle = load_bundle(cfg.path)  # verifies every sha256
    runtime = open_runtime(bundle, backend=cfg.backend, precision=cfg.precision, threads=cfg.threads)
    labels = tuple(bundle.label_names)
    thresholds = np.array([l.threshold for l in bundle.labels], dtype=np.float32)
    for name, value in cfg.thresholds.items():
        if name not in labels:
            raise ConfigError(f"{origin}: bundle thresholds.{name}", f"bundle {bundle.name} has no label {name!r} (labels: {', '.join(labels)})")
        thresholds[labels.index(name)] = value
    triage_index = 0
    if cfg.triage_label is not None:
        if cfg.triage_label not in labels:
            raise ConfigError(f"{origin}: bundle triage_label", f"bundle {bundle.name} has no label {cfg.triage_label!r} (labels: {', '.join(labels)})")
        triage_index = labels.index(cfg.triage_label)
    window_s = cfg.window_s or float(bundle.window_s)
    hop_s = cfg.hop_s or float(bundle.hop_s)
    if hop_s > window_s:
        raise BundleError(cfg.path, f"hop {hop_s} s is longer than the window {window_s} s")
    slot = ModelSlot(
        cfg=cfg,
        bundle=bundle,
        classifier=Classifier(bundle, runtime, batch=1),
        backend=type(runtime).__name__,
        thresholds=thresholds,
        priorities=tuple(l.priority for l in bundle.labels),
        window_s=window_s,
        hop_s=hop_s,
        triage_index=triage_index,
        history=collections.deque(maxlen=max(1, cfg.smoothing)),
    )
    log.info("bundle %s %s loaded (%s, %s, window %.1f s, hop %.1f s, role %s)", bundle.name, bundle.version, slot.backend, cfg.precision, window_s, hop_s, cfg.role)
    return slot
