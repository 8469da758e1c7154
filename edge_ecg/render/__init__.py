"""Windows to images: the contract between training and serving (``RenderSpec`` + ``render``).

``render`` makes the small image a model sees; ``snapshot_png`` puts the same window on ECG
paper for a clinician (alarm evidence, reports). Both use the one rasteriser in ``raster``.
"""

from __future__ import annotations

from edge_ecg.render.model_view import MEAN, STD, render, to_model_input
from edge_ecg.render.spec import CLINICAL_COLUMNS, LAYOUTS, STANDARD_SPEC, RenderSpec


def snapshot_png(window, path, title: str = ""):
    """The window on ECG paper as a PNG (see ``edge_ecg.render.snapshot``)."""
    from edge_ecg.render.snapshot import snapshot_png as _snapshot_png

    return _snapshot_png(window, path, title=title)


__all__ = ["RenderSpec", "render", "to_model_input", "snapshot_png", "LAYOUTS", "CLINICAL_COLUMNS", "STANDARD_SPEC", "MEAN", "STD"]
