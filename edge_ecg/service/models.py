"""A bundle as the daemon runs it: its classifier, window and hop in samples, thresholds and smoothing.

Only validated labels alarm. A label becomes an alarm condition ``model:<label>`` only when the
bundle marks it ``alarm_capable``, gives it an alarm priority, and stores a validated operating
point at the threshold in use whose out-of-fold sensitivity and specificity meet the daemon's
floors (``[alarms.models]``, defaults specificity >= 0.95, sensitivity >= 0.90). A threshold
overridden in the config to a value with no validated operating point is not validated. Every
other label is a *finding*: an onset/offset line in the event log (``kind = "finding"``) with
its calibrated probability, never an alarm. The slot decides this once, at load, and says why
in the log; the pipeline sees only each label's effective priority ("none" = finding).
An alarm's smoothed probability is the mean over the last ``smoothing`` windows.
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
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from edge_ecg.errors import BundleError, ConfigError
from edge_ecg.service.config import BundleConfig, ModelAlarmFloors

if TYPE_CHECKING:
    from edge_ecg.bundle import Bundle
    from edge_ecg.inference import Classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmGate:
    """Whether one label may alarm, and why (or why not): shown by ``run --check`` and logged."""

    label: str
    alarms: bool
    reason: str
    sensitivity: float | None = None
    specificity: float | None = None


def alarm_gate(label, threshold: float, floors: ModelAlarmFloors) -> AlarmGate:
    """Apply the floors to a bundle ``Label`` at the threshold the daemon will use."""
    if label.priority == "none":
        return AlarmGate(label.name, False, "finding only (the bundle gives it no alarm priority)")
    if not label.alarm_capable:
        return AlarmGate(label.name, False, "finding only (the bundle does not mark it alarm-capable)")
    op = label.operating_point(threshold)
    if op is None:
        return AlarmGate(label.name, False, f"finding only (no validated operating point at threshold {threshold:g})")
    key = "low" if floors.basis == "lower_bound" else "value"
    se, sp = op.sensitivity.get(key), op.specificity.get(key)
    if se is None or sp is None:
        return AlarmGate(label.name, False, f"finding only (operating point {op.name!r} has no {floors.basis} sensitivity/specificity)")
    ok = se >= floors.min_sensitivity and sp >= floors.min_specificity
    what = f"validated {floors.basis} sensitivity {se:.3f} (floor {floors.min_sensitivity:g}), specificity {sp:.3f} (floor {floors.min_specificity:g}) at {op.name!r}"
    return AlarmGate(label.name, ok, ("alarm: " if ok else "finding only: ") + what, se, sp)


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
    gates: tuple[AlarmGate, ...] = ()
    finding_sink: Any = None  # callable(kind, **fields): the daemon's event log (``EventSinks.note``)
    _finding_on: dict = field(default_factory=dict)

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

    def note_findings(self, smoothed: np.ndarray, window_probs: np.ndarray, t: float, window: tuple[float, float]) -> list[dict]:
        """Log the onset and the end of each finding-only label (priority "none") in the event log:
        the calibrated probability, its threshold and the label's display name. Never an alarm."""
        out = []
        for i, label in enumerate(self.bundle.labels):
            if self.priorities[i] != "none":
                continue
            on = bool(smoothed[i] >= self.thresholds[i])
            if on == self._finding_on.get(label.name, False):
                continue
            self._finding_on[label.name] = on
            rec = {"finding": label.name, "title": label.title, "state": "onset" if on else "ended",
                   "bundle": self.name, "version": self.bundle.version, "t": round(float(t), 2),
                   "p": round(float(smoothed[i]), 4), "p_window": round(float(window_probs[i]), 4),
                   "threshold": float(self.thresholds[i]), "calibrated": bool(self.bundle.calibrated),
                   "window": [round(window[0], 2), round(window[1], 2)]}
            out.append(rec)
            if self.finding_sink is not None:
                try:
                    self.finding_sink("finding", **rec)
                except Exception as exc:  # logging a finding must never stop the pipeline
                    log.warning("could not log finding %s: %s", label.name, exc)
        return out

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


def load_models(cfgs: Iterable[BundleConfig], origin: str = "config", *, strict: bool = False,
                floors: ModelAlarmFloors | None = None) -> LoadedModels:
    """Load every configured bundle. ``strict`` (``run --check``): the first failure raises, naming
    the file and reason. Otherwise a bundle that fails to load, verify or open its runtime is
    disabled and listed in ``unavailable``; the others load. ``floors``: which labels may alarm (``alarm_gate``)."""
    out = LoadedModels()
    for cfg in cfgs:
        try:
            out.slots.append(load_slot(cfg, origin, floors))
        except Exception as exc:  # BundleError, ConfigError, a runtime that will not open, a signature failure
            if strict:
                raise
            reason = str(exc) or type(exc).__name__
            log.error("bundle %s disabled: %s", cfg.path, reason)
            out.unavailable.append(UnavailableModel(str(cfg.path), cfg.role, reason))
    return out


def load_slot(cfg: BundleConfig, origin: str = "config", floors: ModelAlarmFloors | None = None) -> ModelSlot:
    """Load and verify a bundle and open its runtime; ``BundleError`` names the file if verification fails.

    ``floors`` (the daemon's ``[alarms.models]``) decide which labels may alarm (``alarm_gate``)."""
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
    floors = floors or ModelAlarmFloors()
    gates = tuple(alarm_gate(l, float(thresholds[i]), floors) for i, l in enumerate(bundle.labels))
    if cfg.role == "findings":
        for g in gates:
            log.info("bundle %s label %s: %s", bundle.name, g.label, g.reason)
    priorities = tuple(l.priority if g.alarms else "none" for l, g in zip(bundle.labels, gates))
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
        priorities=priorities if cfg.role == "findings" else tuple(l.priority for l in bundle.labels),
        window_s=window_s,
        hop_s=hop_s,
        triage_index=triage_index,
        history=collections.deque(maxlen=max(1, cfg.smoothing)),
        gates=gates,
    )
    log.info("bundle %s %s loaded (%s, %s, window %.1f s, hop %.1f s, role %s, %s)", bundle.name, bundle.version, slot.backend, cfg.precision, window_s, hop_s, cfg.role,
             bundle.signature.describe() if bundle.signature is not None else "signature not checked")
    return slot
