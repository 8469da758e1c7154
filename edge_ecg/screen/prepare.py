"""From a record file to the windows a bundle can classify, or the reason it cannot.

Each step that changes the signal (deriving limb leads, resampling) or finds something a reader
of the report should know (gaps, flat or saturated leads, several windows) leaves a quality note;
anything that makes the record unusable for this bundle raises ``NotScreenable`` with the reason.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edge_ecg.records import Record
from edge_ecg.records.leads import LIMB_DERIVED, derive_limb_leads

# Used when a bundle does not say which rate its model was trained at: the rate of standard
# 12-lead carts (and of LUDB and most cart exports). Rendering would accept any rate, but a model
# is only valid on images made the way its training images were, so records are brought to it.
DEFAULT_FS = 500.0
FLAT_UV = 10.0  # a lead whose peak-to-peak over a window is below this carries no ECG
LARGE_UV = 5000.0  # a deflection above 5 mV from the median is artefact or a calibration error


class NotScreenable(Exception):
    """The record cannot be screened with this bundle; ``str(exc)`` is the reason for the report."""


@dataclass
class Prepared:
    """A record conformed to the bundle (leads, rate) and cut into windows."""

    record: Record
    windows: list[Record]
    starts: list[int]  # first sample of each window in ``record``
    notes: list[str] = field(default_factory=list)


def required_leads(spec) -> tuple[str, ...]:
    """The leads a ``RenderSpec`` draws: every panel lead plus the rhythm strip's lead."""
    leads = list(spec.panel_leads)
    rhythm = getattr(spec, "rhythm_lead", "")
    if spec.layout == "12lead" and rhythm and rhythm not in leads:
        leads.append(rhythm)
    return tuple(leads)


def bundle_fs(bundle) -> float:
    """The sampling rate the bundle's model expects (``fs`` in bundle.toml), else ``DEFAULT_FS``."""
    for table in (bundle.manifest, bundle.render, bundle.provenance):
        value = table.get("fs") if isinstance(table, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return DEFAULT_FS


def conform_leads(record: Record, needed: Sequence[str]) -> tuple[Record, list[str]]:
    """``record`` restricted to ``needed``, deriving III/aVR/aVL/aVF from I and II when absent."""
    notes: list[str] = []
    if not needed:  # a "strips" spec without leads draws every lead the record has
        return record, notes
    original = record.leads
    missing = [n for n in needed if n not in record.leads]
    derivable = [n for n in missing if n in LIMB_DERIVED]
    if derivable and "I" in record.leads and "II" in record.leads:
        derived = derive_limb_leads(record.lead("I"), record.lead("II"))
        extra = np.stack([derived[n] for n in derivable], axis=1).astype(np.float32)
        record = dataclasses.replace(record, signals=np.concatenate([record.signals, extra], axis=1),
                                     leads=record.leads + tuple(derivable))
        notes.append(f"limb leads {', '.join(derivable)} derived from I and II")
        missing = [n for n in missing if n not in derivable]
    if missing:
        how = "" if "I" in original and "II" in original else " (limb leads can be derived only when I and II are present)"
        raise NotScreenable(f"missing leads the bundle needs: {', '.join(missing)}; "
                            f"record has {len(original)} lead(s): {', '.join(original)}{how}")
    return record.select(needed), notes


def conform_rate(record: Record, fs: float) -> tuple[Record, list[str]]:
    if math.isclose(record.fs, fs, rel_tol=1e-6):
        return record, []
    from edge_ecg.records import resample

    return resample(record, fs), [f"resampled from {record.fs:g} Hz to {fs:g} Hz"]


# Below this rate a recording lacks part of the diagnostic ECG band (AHA: 150 Hz for adults needs
# >= 300 Hz; 250 Hz monitors keep up to ~100 Hz): screened, with a note that says what is missing.
BANDWIDTH_FS = 250.0


def bandwidth_notes(fs: float) -> list[str]:
    """A note for a record sampled below ``BANDWIDTH_FS``: what its rate cannot hold."""
    if fs >= BANDWIDTH_FS:
        return []
    return [f"sampled at {fs:g} Hz: nothing above {fs / 2:g} Hz was recorded (diagnostic ECGs keep up to "
            f"150 Hz); narrow notches and pacing spikes may be missing, read findings with care"]


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Starts of windows of ``window`` samples every ``hop``, plus one ending at the last sample
    when the hops leave a tail uncovered (so the end of a record is always seen)."""
    if n_samples < window:
        return []
    starts = list(range(0, n_samples - window + 1, max(hop, 1)))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def quality_notes(record: Record) -> list[str]:
    """Findings about the signal itself a reader should weigh before trusting a probability."""
    notes: list[str] = []
    sig = record.signals
    nan = np.isnan(sig)
    if nan.any():
        frac = nan.mean(axis=0)
        worst = ", ".join(f"{record.leads[j]} {100 * frac[j]:.0f}%" for j in np.flatnonzero(frac > 0))
        notes.append(f"gaps (missing samples): {worst}")
    with np.errstate(all="ignore"):
        empty = np.all(nan, axis=0)
        ptp = np.where(empty, 0.0, np.nanmax(np.where(nan, -np.inf, sig), axis=0) - np.nanmin(np.where(nan, np.inf, sig), axis=0))
        med = np.nanmedian(np.where(empty[None, :], 0.0, sig), axis=0)
        dev = np.nanmax(np.abs(np.where(nan, med[None, :], sig) - med[None, :]), axis=0)
    flat = [record.leads[j] for j in range(sig.shape[1]) if ptp[j] < FLAT_UV]
    if flat:
        notes.append(f"flat or absent signal (under {FLAT_UV:g} uV peak-to-peak) in {', '.join(flat)}")
    large = [record.leads[j] for j in range(sig.shape[1]) if dev[j] > LARGE_UV]
    if large:
        notes.append(f"deflections over {LARGE_UV / 1000:g} mV (artefact or calibration?) in {', '.join(large)}")
    return notes


def signal_quality_notes(record: Record, starts: Sequence[int], window: int, min_score: float = 0.3) -> list[str]:
    """The bedside daemon's own signal-quality check (``edge_ecg.dsp.quality``) over each window.

    The same monitor filter and per-lead tests (lead off, flat, clipping, high-frequency noise,
    baseline drift) that make the daemon withhold rhythm alarms; a window scoring below
    ``min_score`` (the daemon's default) gets a note, and per-lead findings of usable windows
    are listed once per kind with their leads. So a clinic sees "noisy" where the daemon would have
    said "noise", instead of a probability that looks as trustworthy as any other.
    """
    from edge_ecg.dsp.filters import MonitorFilter, hold_nan
    from edge_ecg.dsp.quality import window_quality

    n_leads = record.signals.shape[1]
    held = hold_nan(np.asarray(record.signals, dtype=np.float64), np.zeros(n_leads))
    first = np.nan_to_num(held[0])
    # the filter starts at rest: take each lead's first value off, so a DC offset is no step
    filt = MonitorFilter(record.fs, n_leads)(held - first[None, :])
    notes: list[str] = []
    found: dict[str, list[str]] = {}  # kind of finding -> leads, over the usable windows
    for s in starts:
        q = window_quality(tuple(record.leads), held[s:s + window], filt[s:s + window], None, record.fs,
                           s, s + window, min_score)
        kinds = _by_kind(q.leads)
        if not q.usable:
            why = "; ".join(f"{k} in {', '.join(leads)}" for k, leads in kinds.items()) or "no lead usable"
            notes.append(f"signal quality {q.score:.2f} at {s / record.fs:.0f} s, below the {min_score:g} "
                         f"the monitor trusts: {why}")
            continue
        for k, leads in kinds.items():
            found.setdefault(k, [])
            found[k] += [lead for lead in leads if lead not in found[k]]
    if found:
        notes.append("monitor quality check: " + "; ".join(f"{k} in {', '.join(leads)}" for k, leads in found.items()))
    return notes


# LeadQuality's flags, named as edge_ecg.dsp.quality's notes name them
_FINDINGS = (("lead_off", "lead off"), ("flat", "flat line"), ("saturated", "saturated"),
             ("noisy", "high-frequency noise"), ("baseline_unstable", "unstable baseline"))


def _by_kind(leads_quality) -> dict[str, list[str]]:
    """Per-lead findings grouped as kind -> leads ("high-frequency noise" -> ["II", "aVF"])."""
    out: dict[str, list[str]] = {}
    for lq in leads_quality:
        for flag, kind in _FINDINGS:
            if getattr(lq, flag):
                out.setdefault(kind, []).append(lq.lead)
    return out


def prepare(record: Record, bundle, spec=None) -> Prepared:
    """Conform ``record`` to ``bundle`` and cut it into the bundle's windows."""
    spec = spec if spec is not None else bundle.spec
    fs = bundle_fs(bundle)
    if record.n_samples == 0:
        raise NotScreenable("record has no samples")
    record, notes = conform_leads(record, required_leads(spec))
    if np.all(np.isnan(record.signals)):
        raise NotScreenable("every sample of the leads the bundle needs is missing")
    window = int(round(bundle.window_s * fs))
    duration = record.n_samples / record.fs
    if duration + 0.5 / record.fs < bundle.window_s:
        raise NotScreenable(f"record is {duration:.2f} s long, shorter than the bundle's {bundle.window_s:g} s window")
    source_fs = record.fs
    record, rate_notes = conform_rate(record, fs)
    notes = [str(n) for n in record.meta.get("read_notes", ())] + bandwidth_notes(source_fs) + rate_notes + notes
    n = record.n_samples
    if window - 1 <= n < window:  # resampling rounded the length down by a sample: pad the edge
        record = dataclasses.replace(record, signals=np.concatenate([record.signals, record.signals[-1:]], axis=0))
    starts = window_starts(record.n_samples, window, int(round(bundle.hop_s * fs)))
    windows = [record.slice(s, s + window) for s in starts]
    notes += quality_notes(record)
    notes += signal_quality_notes(record, starts, window)
    if len(windows) > 1:
        notes.append(f"{len(windows)} windows of {bundle.window_s:g} s (hop {bundle.hop_s:g} s)")
    return Prepared(record=record, windows=windows, starts=starts, notes=notes)
