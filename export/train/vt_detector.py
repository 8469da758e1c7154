"""The classical VT detector (``edge_ecg.dsp.StreamAnalyzer``) on the CinC 2015 alarms, alone
and combined with the vt-triage model.

The detector is fed the record causally, in 1 s blocks, from ``warmup_s`` before the alarm;
it *confirms* the alarm if a ventricular-tachycardia or -fibrillation condition is active or
starts within the ``lookback_s`` ending at the alarm. Combination rule: the appliance suppresses
an alarm only when both the model and the detector call it false (a miss costs five false alarms,
so either one can keep an alarm).
"""

from __future__ import annotations

import logging

import numpy as np

from edge_ecg.records import read_record
from edge_ecg.stream.block import SampleBlock
from export.datasets.windows import select_leads
from export.train.metrics import challenge_score

log = logging.getLogger(__name__)

VT_KINDS = ("ventricular_tachycardia", "ventricular_fibrillation")


def detector_confirms(path: str, alarm_s: float = 300.0, lookback_s: float = 16.0, warmup_s: float = 60.0,
                      leads=("II", "V")) -> bool:
    """Does the classical detector see VT/VF in the ``lookback_s`` before the alarm?"""
    from edge_ecg.dsp import StreamAnalyzer

    rec = read_record(path)
    fs = rec.fs
    a, stop = int(max(0.0, alarm_s - warmup_s) * fs), int(alarm_s * fs)
    win = select_leads(rec.slice(a, stop), leads)
    an = StreamAnalyzer(fs, win.leads)
    look_from = stop - int(lookback_s * fs)
    step = int(fs)
    seen = False
    sig = np.nan_to_num(win.signals, nan=0.0)  # the cart sends numbers; WFDB gaps become lead-off below
    off = np.isnan(win.signals)
    for s in range(0, len(sig), step):
        blk = SampleBlock(start=a + s, samples=sig[s:s + step], fs=fs, leads=win.leads, lead_off=off[s:s + step])
        upd = an.process(blk)
        if upd.stop <= look_from:
            continue
        if any(e.kind in VT_KINDS and e.state == "onset" for e in upd.events) or any(k in VT_KINDS for k in upd.active):
            seen = True
    return seen


def _rates(y: np.ndarray, pred: np.ndarray) -> dict:
    tp, tn = int((pred & y).sum()), int((~pred & ~y).sum())
    fp, fn = int((pred & ~y).sum()), int((~pred & y).sum())
    return {"TP": tp, "TN": tn, "FP": fp, "FN": fn, "TPR": round(tp / max(1, tp + fn), 4),
            "TNR": round(tn / max(1, tn + fp), 4), "score": round(challenge_score(y, pred), 4)}


def vt_with_detector(td, cv, have: np.ndarray) -> dict:
    """Detector alone and model-OR-detector, on the same out-of-fold alarms as the model alone."""
    idx = np.nonzero(have)[0]
    y = td.windows.labels[idx, 0].astype(bool)
    model = cv.oof[idx, 0] >= cv.oof_threshold[idx, 0]
    det = np.zeros(len(idx), dtype=bool)
    for n, i in enumerate(idx):
        try:
            det[n] = detector_confirms(td.windows.refs[i].path)
        except Exception as exc:  # one unreadable record must not lose the whole evaluation
            log.warning("classical detector failed on %s: %s (counted as confirming)", td.windows.refs[i].path, exc)
            det[n] = True
    return {"rule": "alarm kept unless both the model and the classical detector call it false",
            "detector_alone": _rates(y, det), "model_or_detector": _rates(y, model | det)}
