"""The classical VT detector, a triage bundle, and what the daemon does with both, on one table.

The daemon raises a classical alarm when the detector does; a triage bundle then judges the
``window_s`` of ECG ending at that moment (``service.pipeline``), and the alarm manager
(``alarms.manager.AlarmManager.triage``) may lower a high-priority alarm the model calls false by
``max_steps`` levels, never below ``floor``, and never clears it; with ``annotate_only`` (the
shipped config) it only logs the verdict. So the daemon's alarm is *raised* exactly when the
detector raises it; what the model changes is the priority. Rows:

* detector alone: the streamed classical detector (``alarm_eval``);
* model alone: the bundle on the ``window_s`` ending at the alarm time, at its threshold;
* daemon, raised (any priority): what a nurse is alerted to at all;
* daemon, raised at high priority: after triage within the config's limits;
* the same with ``annotate_only = false`` (what letting the model lower alarms would do).

A bundle trained on these alarms scores itself in-sample here: its own out-of-fold figures (from
its ``bundle.toml`` provenance) are printed beside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_ecg.eval.alarm_cv import Counts
from edge_ecg.eval.alarm_eval import ALARM_AT_S, AlarmReport
from edge_ecg.records import Record, read_record


@dataclass(frozen=True)
class TriageLimits:
    """The part of the daemon config that decides what a triage verdict does."""

    enabled: bool = True
    conditions: tuple[str, ...] = ("ventricular_tachycardia",)
    max_steps: int = 1
    floor: str = "medium"
    annotate_only: bool = False

    @classmethod
    def from_daemon_config(cls, cfg) -> "TriageLimits":
        t = cfg.alarms.triage
        return cls(bool(t.enabled), tuple(t.conditions), int(t.max_steps), t.floor.label, bool(t.annotate_only))

    def lowers(self, kind: str) -> bool:
        """Would a 'false' verdict lower a high-priority alarm of ``kind``?"""
        from edge_ecg.alarms.conditions import Priority

        if not self.enabled or kind not in self.conditions or self.annotate_only or self.max_steps < 1:
            return False
        return Priority.parse(self.floor) < Priority.HIGH


def window_ending(rec: Record, t_end_s: float, window_s: float) -> Record | None:
    """The last ``window_s`` of ``rec`` before ``t_end_s``, as the pipeline cuts it (None if > 20% gaps)."""
    b = min(int(round(t_end_s * rec.fs)), rec.n_samples)
    a = b - int(round(window_s * rec.fs))
    if a < 0:
        return None
    x = rec.signals[a:b]
    nan = np.isnan(x)
    if nan.mean() > 0.2:
        return None
    return Record(signals=np.nan_to_num(x, nan=0.0), fs=rec.fs, leads=rec.leads, name=f"{rec.name}@{t_end_s:.1f}s")


def triage_rows(report: AlarmReport, folder: str | Path, bundle_path: str | Path, limits: TriageLimits,
                kind: str = "ventricular_tachycardia") -> dict[str, Any]:
    """The four rows of the module docstring, with per-record model probabilities."""
    from edge_ecg.service.config import BundleConfig
    from edge_ecg.service.models import load_slot

    slot = load_slot(BundleConfig(path=Path(bundle_path), role="triage", threads=1))
    i, thr = slot.triage_index, float(slot.thresholds[slot.triage_index])
    folder = Path(folder)
    det, model, raised_any, raised_high, lowering, per = [], [], [], [], [], []
    active = TriageLimits(limits.enabled, limits.conditions, limits.max_steps, limits.floor, annotate_only=False)
    for r in report.results:
        rec = read_record(folder / f"{r.name}.hea")
        w = window_ending(rec, ALARM_AT_S, slot.window_s)
        p_alarm = None if w is None else float(slot.classifier.predict([w])[0][i])
        m_true = p_alarm is None or p_alarm >= thr  # an unjudgeable window keeps the alarm
        p_raise = None
        high = high_if_lowering = r.raised
        if r.raised:
            t_r = min(r.raised_at_s if r.raised_at_s is not None else (r.onset_s or ALARM_AT_S), ALARM_AT_S + 0.3)
            w = window_ending(rec, t_r, slot.window_s)
            p_raise = None if w is None else float(slot.classifier.predict([w])[0][i])
            judged_false = p_raise is not None and p_raise < thr
            high = not (judged_false and limits.lowers(kind))
            high_if_lowering = not (judged_false and active.lowers(kind))
        det.append((r.truth, r.raised))
        model.append((r.truth, m_true))
        raised_any.append((r.truth, r.raised))
        raised_high.append((r.truth, high))
        lowering.append((r.truth, high_if_lowering))
        per.append({"record": r.name, "truth": r.truth, "detector": r.raised, "p_true_at_alarm": None if p_alarm is None else round(p_alarm, 4),
                    "p_true_at_raise": None if p_raise is None else round(p_raise, 4), "high_priority": high})
    oof = (slot.bundle.provenance.get("vt_triage") or {}).get("model_alone")
    return {
        "bundle": {"name": slot.name, "version": slot.bundle.version, "threshold": thr, "label": slot.labels[i],
                   "out_of_fold_from_provenance": oof},
        "limits": limits.__dict__,
        "rows": {
            "detector alone": Counts.of(det).to_dict(),
            "model alone (window ending at the alarm)": Counts.of(model).to_dict(),
            "daemon: alarm raised (any priority)": Counts.of(raised_any).to_dict(),
            "daemon: alarm at high priority after triage": Counts.of(raised_high).to_dict(),
            "daemon with annotate_only = false: high priority": Counts.of(lowering).to_dict(),
        },
        "records": per,
    }


def format_triage(t: dict[str, Any]) -> str:
    b = t["bundle"]
    head = f"{'':<46} {'TPR':>6} {'TNR':>6} {'score':>6} {'TP':>4} {'FN':>3} {'FP':>4} {'TN':>4}"
    lines = [f"triage bundle {b['name']} {b['version']} (label {b['label']}, threshold {b['threshold']:.4f}); daemon triage: "
             + ", ".join(f"{k}={v}" for k, v in t["limits"].items()), head, "-" * len(head)]
    for name, c in t["rows"].items():
        lines.append(f"{name:<46} {c['tpr']:>6.3f} {c['tnr']:>6.3f} {c['score']:>6.3f} {c['tp']:>4} {c['fn']:>3} {c['fp']:>4} {c['tn']:>4}")
    oof = b.get("out_of_fold_from_provenance")
    if oof:
        lines.append(f"(the bundle was trained on these alarms: its own out-of-fold model-alone figures are TPR {oof.get('TPR')} "
                     f"TNR {oof.get('TNR')} score {oof.get('score')}; the model row above is largely in-sample)")
    return "\n".join(lines)
