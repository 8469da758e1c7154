"""How a bundle's labels are shown to a clinician: clinical words, priority, threshold, calibration.

A bundle names its outputs with code names (``conduction_abnormality``); a report shows clinical
words ("Conduction abnormality: bundle branch block or AV block") with the code name in a
tooltip. The words come from the bundle itself when its ``[[labels]]`` table has
``display_name``, else from ``CATALOGUE`` below, else from the code name. Whether a label's
probability is calibrated, and whether it may raise an alarm, is read from the bundle too
(``calibrated`` / ``calibration`` and ``alarm`` keys, per label or bundle-wide): a bundle that does
not say is shown as uncalibrated, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_ecg.bundle import PRIORITIES

CATALOGUE = {
    "af_flutter": "Atrial fibrillation or flutter",
    "af": "Atrial fibrillation",
    "atrial_fibrillation": "Atrial fibrillation",
    "lvh": "Left ventricular hypertrophy",
    "conduction_abnormality": "Conduction abnormality (bundle branch block or AV block)",
    "sinus_bradycardia": "Sinus bradycardia",
    "sinus_tachycardia": "Sinus tachycardia",
    "ventricular_ectopy": "Ventricular ectopic beats",
    "ventricular_run": "Run of ventricular beats",
    "ventricular_tachycardia": "Ventricular tachycardia",
    "ventricular_fibrillation": "Ventricular fibrillation",
    "artifact": "Artifact (noise or lead problem)",
    "true_alarm": "True ventricular tachycardia alarm",
    "stemi": "ST-elevation myocardial infarction",
    "mi": "Myocardial infarction",
    "ischemia": "Ischaemic ST-T changes",
    "rbbb": "Right bundle branch block",
    "lbbb": "Left bundle branch block",
    "av_block": "Atrioventricular block",
    "normal": "Normal ECG",
}


@dataclass(frozen=True)
class LabelInfo:
    """One label as the report shows it. ``priority`` is the bundle's (high/medium/low/none)."""

    name: str
    threshold: float
    priority: str = ""
    display: str = ""
    calibrated: bool = False
    alarm: bool | None = None  # None: the bundle does not say

    @property
    def title(self) -> str:
        return self.display or display_name(self.name)

    @property
    def rank(self) -> int:
        """Sort key: high before medium before low before none (then bundle order)."""
        return PRIORITIES.index(self.priority) if self.priority in PRIORITIES else len(PRIORITIES)


def display_name(code: str) -> str:
    """Clinical words for a code name: the catalogue's, else the code name in words."""
    if code in CATALOGUE:
        return CATALOGUE[code]
    words = code.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else code


def _flag(table: dict, key: str) -> bool | None:
    value = table.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, (dict, str)) and value:  # e.g. calibration = {method = "isotonic"} or "platt"
        return True
    return None


def bundle_labels(bundle) -> tuple[LabelInfo, ...]:
    """The bundle's labels as the report shows them, tolerant of bundles with or without the
    display and calibration fields (thresholds and priorities through ``bundle.labels``)."""
    raw = bundle.manifest.get("labels", []) if isinstance(getattr(bundle, "manifest", None), dict) else []
    by_name = {t.get("name"): t for t in raw if isinstance(t, dict)}
    whole = bundle.manifest.get("calibration") if isinstance(getattr(bundle, "manifest", None), dict) else None
    out = []
    for lb in bundle.labels:
        table = by_name.get(lb.name, {})
        calibrated = getattr(lb, "calibrated", None)
        if not isinstance(calibrated, bool):
            calibrated = _flag(table, "calibrated")
        if calibrated is None:
            calibrated = _flag(table, "calibration")
        if calibrated is None and isinstance(whole, dict) and whole:
            calibrated = whole.get("calibrated", True) is not False
        alarm = getattr(lb, "alarm", None)
        if not isinstance(alarm, bool):
            alarm = _flag(table, "alarm")
        display = getattr(lb, "display_name", None) or table.get("display_name") or table.get("display") or ""
        out.append(LabelInfo(lb.name, float(lb.threshold), lb.priority, str(display), bool(calibrated), alarm))
    return tuple(out)
