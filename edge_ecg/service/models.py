"""A bundle as the daemon runs it: its classifier, window and hop in samples, thresholds and smoothing.

Model findings become alarm conditions ``model:<label>`` when the label's smoothed probability
(mean over the last ``smoothing`` windows) reaches its threshold (bundle default, overridden in
config); labels whose bundle priority is ``none`` are findings only (logged, never alarmed).
A triage bundle instead judges a classical alarm: its first label (or ``triage_label``) is the
probability that the alarm is true.

Loading has two modes. ``edge-ecg run --check`` (installers) loads strictly: the first bundle
that fails to load or verify is an error with its file and reason. The running daemon loads
leniently (``load_models``): a bundle that fails disables that model only, becomes an
``UnavailableModel`` (its path and why), the ``model_unavailable`` technical alarm names it, and
the classical alarms run; nothing downstream of the DSP may stop them.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

import numpy as np

from edge_ecg.errors import BundleError, ConfigError
from edge_ecg.service.config import BundleConfig

if TYPE_CHECKING:
    from edge_ecg.bundle import Bundle
    from edge_ecg.inference import Classifier

log = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    """One loaded, verified bundle with its runtime, as the pipeline runs it."""

    cfg: BundleConfig
    bundle: "Bundle"
    classifier: "Classifier"
    backend: str
    thresholds: np.ndarray
    priorities: tuple[str, ...]
    window_s: float
    hop_s: float
    triage_index: int = 0
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1))
    windows: int = 0  # windows classified (findings): what `bundle install` waits for before it trusts a new bundle

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.bundle.label_names)

    @property
    def role(self) -> str:
        return self.cfg.role

    def alarm_labels(self) -> list[tuple[int, str, str]]:
        """(index, label, priority) of the labels whose findings may alarm (priority ``none`` = logged finding only)."""
        if self.cfg.role != "findings":
            return []
        return [(i, label, prio) for i, (label, prio) in enumerate(zip(self.labels, self.priorities)) if prio != "none"]

    def smooth(self, probs: np.ndarray) -> np.ndarray:
        """Called once per classified findings window (so it also counts them)."""
        self.windows += 1
        self.history.append(np.asarray(probs, dtype=np.float32))
        return np.mean(np.stack(self.history), axis=0)

    def required_leads(self) -> tuple[str, ...]:
        spec = self.bundle.spec
        return tuple(spec.panel_leads) if spec.layout == "12lead" or spec.leads else ()

    def lead_problem(self, leads: tuple[str, ...]) -> str | None:
        """Why this model cannot run on a source with ``leads`` (None = it can): a lead its render
        spec draws is missing, or fewer leads than its ``[input] leads`` (a strip model stands a
        source's other lead in for a missing one, ``lead_select.select_leads``, but needs as many)."""
        need = [l for l in self.required_leads() if l not in leads]
        if need:
            return f"needs leads {', '.join(need)}; the source has {', '.join(leads)}"
        wanted = self.bundle.input_leads
        if len(leads) < len(wanted):
            return f"needs {len(wanted)} ECG leads ({', '.join(wanted)}); the source has {len(leads)} ({', '.join(leads)})"
        return None


@dataclass(frozen=True)
class UnavailableModel:
    """A configured bundle that is not running: where it is, its role, and why (for the alarm and the log)."""

    path: str
    role: str
    reason: str

    @property
    def name(self) -> str:
        from pathlib import Path

        return Path(self.path).name

    def to_dict(self) -> dict[str, str]:
        return {"bundle": self.name, "path": self.path, "role": self.role, "reason": self.reason}


@dataclass
class LoadedModels:
    """What the daemon runs (``slots``) and what it could not (``unavailable``)."""

    slots: list[ModelSlot] = field(default_factory=list)
    unavailable: list[UnavailableModel] = field(default_factory=list)


def load_models(cfgs: Iterable[BundleConfig], origin: str = "config", *, strict: bool = False) -> LoadedModels:
    """Load every configured bundle. ``strict`` (``run --check``): the first failure raises, naming
    the file and reason. Otherwise a bundle that fails to load, verify or open its runtime is
    disabled and listed in ``unavailable``; the others load."""
    out = LoadedModels()
    for cfg in cfgs:
        try:
            out.slots.append(load_slot(cfg, origin))
        except Exception as exc:  # BundleError, ConfigError, a runtime that will not open, a signature failure
            if strict:
                raise
            reason = str(exc) or type(exc).__name__
            log.error("bundle %s disabled: %s", cfg.path, reason)
            out.unavailable.append(UnavailableModel(str(cfg.path), cfg.role, reason))
    return out


def load_slot(cfg: BundleConfig, origin: str = "config") -> ModelSlot:
    """Load and verify a bundle and open its runtime; ``BundleError`` names the file if verification fails."""
    from edge_ecg.bundle import load_bundle
    from edge_ecg.inference import Classifier
    from edge_ecg.runtimes import open_runtime

    bundle = load_bundle(cfg.path, trust=cfg.trust)  # the signature under [trust], then every sha256
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
    log.info("bundle %s %s loaded (%s, %s, window %.1f s, hop %.1f s, role %s, %s)", bundle.name, bundle.version, slot.backend, cfg.precision, window_s, hop_s, cfg.role,
             bundle.signature.describe() if bundle.signature is not None else "signature not checked")
    return slot
