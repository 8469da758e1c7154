"""Evaluation of the classical detectors on annotated real data (QRS detection, rhythm alarms)."""

from __future__ import annotations

from edge_ecg.eval.alarm_eval import AlarmReport, evaluate_alarms
from edge_ecg.eval.qrs_eval import BEAT_SYMBOLS, QrsReport, Score, evaluate_noise_stress, evaluate_qrs, stream_record

__all__ = ["AlarmReport", "evaluate_alarms", "BEAT_SYMBOLS", "QrsReport", "Score", "evaluate_noise_stress", "evaluate_qrs", "stream_record"]
