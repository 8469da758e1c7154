"""Where each lead goes: bands (rows of the image) made of panels (a lead over a time span).

Both layouts reduce to the same shape so one rasteriser draws them: ``12lead`` is four bands
(three rows of four 2.5 s panels, then the full-length rhythm strip) and ``strips`` is one band
per lead with a single full-length panel. Panel edges fall on pixel-column edges so each panel
owns whole columns and its first sample is the first one at or after its left edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge_ecg.render.spec import CLINICAL_COLUMNS, RenderSpec


@dataclass(frozen=True)
class Panel:
    """One lead drawn over pixel columns [x0, x1) of a band."""

    band: int
    lead: str
    x0: int
    x1: int


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    band_tops: tuple[int, ...]  # first pixel row of each band
    band_heights: tuple[int, ...]
    panels: tuple[Panel, ...]

    @property
    def n_bands(self) -> int:
        return len(self.band_tops)

    def baseline(self, band: int) -> float:
        """Row (float, pixel edges at integers) of a band's zero line: the centre of its middle row,
        so a flat line of width 1 px is one crisp pixel row rather than two half-grey ones."""
        return self.band_tops[band] + self.band_heights[band] // 2 + 0.5


def _bands(height: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    edges = [round(k * height / n) for k in range(n + 1)]
    return tuple(edges[:-1]), tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


def make_layout(spec: RenderSpec, window_leads: tuple[str, ...]) -> Layout:
    """The bands and panels of ``spec``; ``window_leads`` fills a ``strips`` spec with no leads."""
    width = spec.width
    panels: list[Panel] = []
    if spec.layout == "12lead":
        columns = CLINICAL_COLUMNS if not spec.leads else tuple(tuple(spec.leads[3 * c : 3 * c + 3]) for c in range(4))
        tops, heights = _bands(spec.height, 4)
        xs = [round(c * width / 4) for c in range(5)]
        for c, column in enumerate(columns):
            for row, lead in enumerate(column):
                panels.append(Panel(row, lead, xs[c], xs[c + 1]))
        panels.append(Panel(3, spec.rhythm_lead, 0, width))
    else:
        leads = spec.leads or tuple(window_leads)
        if not leads:
            raise ValueError("a strips layout needs at least one lead")
        tops, heights = _bands(spec.height, len(leads))
        panels = [Panel(band, lead, 0, width) for band, lead in enumerate(leads)]
    panels.sort(key=lambda p: (p.band, p.x0))
    return Layout(width, spec.height, tops, heights, tuple(panels))


def first_sample(x: int, samples_per_px: float) -> int:
    """Index of the first sample at or right of pixel edge ``x`` (tolerant of float error)."""
    return int(math.ceil(x * samples_per_px - 1e-9))
