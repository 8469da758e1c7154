"""Offline screening: folders of stored ECGs through a bundle, to ``results.csv`` and ``report.html``.

``screen(inputs, bundle, ScreenOptions(out_dir=...))`` is the library entry point; the
``edge-ecg screen`` command is a thin layer over it.
"""

from edge_ecg.screen.prepare import NotScreenable, Prepared, prepare
from edge_ecg.screen.results import BundleId, RecordResult, read_results
from edge_ecg.screen.runner import AGGREGATES, ScreenOptions, ScreenSummary, screen

__all__ = [
    "AGGREGATES",
    "BundleId",
    "NotScreenable",
    "Prepared",
    "RecordResult",
    "ScreenOptions",
    "ScreenSummary",
    "prepare",
    "read_results",
    "screen",
]
