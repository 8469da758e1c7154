"""Streaming signal analysis: causal filters, QRS detection, heart rate, signal quality, rhythm alarms.

The public interface (used by the bedside daemon) is ``StreamAnalyzer`` and the value types in
``edge_ecg.dsp.types``; see the README section "Streaming signal analysis".
"""

from __future__ import annotations

from edge_ecg.dsp.analyzer import StreamAnalyzer
from edge_ecg.dsp.config import AnalyzerConfig, FilterConfig, QrsConfig, RhythmLimits
from edge_ecg.dsp.filters import MonitorFilter, SosStream, StreamResampler
from edge_ecg.dsp.qrs import QrsDetector
from edge_ecg.dsp.types import RHYTHM_KINDS, AnalysisUpdate, Beat, LeadQuality, RhythmEvent, WindowQuality

__all__ = [
    "StreamAnalyzer", "AnalyzerConfig", "FilterConfig", "QrsConfig", "RhythmLimits", "MonitorFilter", "SosStream",
    "StreamResampler", "QrsDetector", "RHYTHM_KINDS", "AnalysisUpdate", "Beat", "LeadQuality", "RhythmEvent", "WindowQuality",
]
