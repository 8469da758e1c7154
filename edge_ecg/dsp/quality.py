"""Signal quality per lead and per window: lead-off, flat line, clipping, HF noise, baseline drift.

Each check is a simple, explainable statistic over the window, so a technical-alarm message can
say exactly why a lead was distrusted. Thresholds are in microvolts and seconds; they are not
tuned to a record but set from what an ECG can physically look like (a QRS is >= ~150 uV
peak-to-peak on any usable lead; an ADC rail shows as a run of identical extreme samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.dsp.types import LeadQuality, WindowQuality


@dataclass(frozen=True)
class QualityLimits:
    flat_ptp_uv: float = 60.0  # filtered peak-to-peak below this = flat line
    clip_fraction: float = 0.02  # share of samples stuck at the window's extremes
    hf_ratio: float = 0.15  # RMS of the raw second difference / filtered peak-to-peak (clean: 0.01-0.05)
    baseline_uv: float = 1500.0  # range of 0.5 s means of the raw signal
    lead_off_fraction: float = 0.2


def lead_quality(
    lead: str,
    raw: np.ndarray,
    filtered: np.ndarray,
    lead_off: np.ndarray | None,
    fs: float,
    limits: QualityLimits = QualityLimits(),
) -> LeadQuality:
    """Quality of one lead over a window: ``raw`` (gaps held), ``filtered`` (monitor filter)."""
    off = None if lead_off is None else np.asarray(lead_off)[:, None]
    return leads_quality((lead,), raw[:, None], filtered[:, None], off, fs, limits)[0]


def leads_quality(
    leads: tuple[str, ...],
    raw: np.ndarray,
    filtered: np.ndarray,
    lead_off: np.ndarray | None,
    fs: float,
    limits: QualityLimits = QualityLimits(),
) -> tuple[LeadQuality, ...]:
    """Quality of every lead over a window, vectorised over leads (it runs twice a second)."""
    n = raw.shape[0]
    if n < 4:
        return tuple(LeadQuality(name, 0.0, notes=(f"{name}: too few samples",)) for name in leads)
    frac_off = lead_off.mean(axis=0) if lead_off is not None and lead_off.size else np.zeros(len(leads))
    fmax, fmin = filtered.max(axis=0), filtered.min(axis=0)
    ptp = fmax - fmin
    # clipping: samples sitting exactly on the window's extreme values, in runs (a rail, not a peak)
    hi, lo = raw.max(axis=0), raw.min(axis=0)
    at = ((raw == hi) | (raw == lo)) & (hi > lo)
    stuck = at[1:] & at[:-1] & (raw[1:] == raw[:-1])
    clip_frac = stuck.mean(axis=0)
    # high-frequency noise: RMS of the raw second difference (a high-pass) against the filtered
    # signal's peak-to-peak, scaled to 360 Hz so the limit holds at any sampling rate
    d2 = raw[2:] - 2 * raw[1:-1] + raw[:-2]
    hf = np.sqrt((d2 * d2).mean(axis=0)) / (ptp + 1e-9) * (fs / 360.0) ** 2
    # baseline instability: range of half-second means of the unfiltered signal
    m = max(int(0.5 * fs), 1)
    k = n // m
    drift = np.ptp(raw[: k * m].reshape(k, m, -1).mean(axis=1), axis=0) if k >= 2 else np.zeros(len(leads))
    out = []
    for j, lead in enumerate(leads):
        notes: list[str] = []
        off = bool(frac_off[j] > limits.lead_off_fraction)
        if off:
            notes.append(f"{lead}: lead off {100 * frac_off[j]:.0f}% of the window")
        flat = bool(ptp[j] < limits.flat_ptp_uv) and not off
        if flat:
            notes.append(f"{lead}: flat line ({ptp[j]:.0f} uV peak-to-peak)")
        saturated = bool(clip_frac[j] > limits.clip_fraction)
        if saturated:
            notes.append(f"{lead}: saturated {100 * clip_frac[j]:.0f}% of samples")
        noisy = bool(hf[j] > limits.hf_ratio) and not flat and not off
        if noisy:
            notes.append(f"{lead}: high-frequency noise (index {hf[j]:.2f})")
        unstable = bool(drift[j] > limits.baseline_uv)
        if unstable:
            notes.append(f"{lead}: unstable baseline ({drift[j]:.0f} uV)")
        if off or flat:
            score = 0.0
        else:
            score = 1.0
            if saturated:
                score -= 0.6 * min(clip_frac[j] / (5 * limits.clip_fraction), 1.0)
            if noisy:
                score -= 0.6 * min((hf[j] - limits.hf_ratio) / limits.hf_ratio + 0.5, 1.0)
            if unstable:
                score -= 0.3 * min(drift[j] / (2 * limits.baseline_uv), 1.0)
            score = max(score, 0.0)
        out.append(LeadQuality(lead=lead, score=round(float(score), 3), lead_off=off, flat=flat, saturated=saturated,
                               noisy=noisy, baseline_unstable=unstable, notes=tuple(notes)))
    return tuple(out)


def window_quality(
    leads: tuple[str, ...],
    raw: np.ndarray,
    filtered: np.ndarray,
    lead_off: np.ndarray | None,
    fs: float,
    start: int,
    stop: int,
    min_score: float = 0.3,
    coverage: float = 1.0,
    limits: QualityLimits = QualityLimits(),
) -> WindowQuality:
    """Per-lead quality and the window score (the best lead: beats are fused over leads)."""
    per = leads_quality(tuple(leads), raw, filtered, lead_off, fs, limits)
    score = max((q.score for q in per), default=0.0) * coverage
    notes = tuple(n for q in per for n in q.notes)
    return WindowQuality(start=start, stop=stop, score=round(score, 3), usable=score >= min_score, leads=per, notes=notes, coverage=coverage)
