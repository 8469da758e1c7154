"""Resampling with scipy's polyphase filter, and the 12 leads from an 8-lead cart."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from edge_ecg.errors import RecordError
from edge_ecg.records.leads import LIMB_DERIVED, STANDARD_12, derive_limb_leads
from edge_ecg.records.record import Record


def _ratio(fs_from: float, fs_to: float) -> tuple[int, int]:
    ratio = (Fraction(str(float(fs_to))) / Fraction(str(float(fs_from)))).limit_denominator(10000)
    return ratio.numerator, ratio.denominator


def resample_array(x: np.ndarray, fs_from: float, fs_to: float) -> np.ndarray:
    """(n, k) samples at ``fs_from`` to ``fs_to`` (polyphase FIR, Kaiser window, scipy's defaults).

    NaN gaps are bridged by linear interpolation before filtering (a NaN would smear over the
    whole filter length) and put back afterwards at the resampled positions they cover.
    """
    up, down = _ratio(fs_from, fs_to)
    x = np.asarray(x, dtype=np.float64)
    if up == down:
        return x.copy()
    gaps = np.isnan(x)
    filled = x.copy()
    idx = np.arange(x.shape[0])
    for j in np.nonzero(gaps.any(axis=0))[0]:
        ok = ~gaps[:, j]
        filled[:, j] = np.interp(idx, idx[ok], x[ok, j]) if ok.any() else 0.0
    # 'line' padding: no ringing at the ends from a baseline offset (raw Holter data sits mV off zero)
    out = resample_poly(filled, up, down, axis=0, padtype="line")
    if gaps.any():
        src = np.minimum(np.round(np.arange(out.shape[0]) * down / up).astype(np.int64), x.shape[0] - 1)
        out[gaps[src]] = np.nan
    return out


def resample(record: Record, fs: float) -> Record:
    """``record`` at sampling rate ``fs`` (polyphase, so anti-aliased when going down)."""
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(record.source or record.name, f"cannot resample to {fs!r} Hz: rate must be positive")
    if float(fs) == float(record.fs):
        return record
    up, down = _ratio(record.fs, fs)
    out = resample_array(record.signals, record.fs, fs).astype(np.float32)
    meta = dict(record.meta, resampled_from=record.fs)
    return dataclasses.replace(record, signals=out, fs=float(record.fs) * up / down, meta=meta)


def ensure_12_leads(record: Record) -> Record:
    """The standard 12 leads first (then any others), deriving III, aVR, aVL, aVF from I and II.

    Many carts send 8 leads (I, II, V1..V6) because the other four are linear in I and II
    (Einthoven, Goldberger). Any other missing lead is an error naming the record.
    """
    where = record.source or record.name or "<record>"
    missing = [lead for lead in STANDARD_12 if lead not in record.leads]
    if not missing:
        return record
    underivable = [lead for lead in missing if lead not in LIMB_DERIVED or "I" not in record.leads or "II" not in record.leads]
    if underivable:
        raise RecordError(where, f"cannot make 12 leads: missing {', '.join(underivable)} (has {', '.join(record.leads)})")
    derived = derive_limb_leads(record.lead("I"), record.lead("II"))
    columns = [record.lead(lead) if lead in record.leads else derived[lead] for lead in STANDARD_12]
    extra = [lead for lead in record.leads if lead not in STANDARD_12]
    columns += [record.lead(lead) for lead in extra]
    meta = dict(record.meta, derived_leads=missing)
    return dataclasses.replace(record, signals=np.stack(columns, axis=1).astype(np.float32), leads=STANDARD_12 + tuple(extra), meta=meta)
