"""The clinician snapshot: a window on ECG paper (25 mm/s, 10 mm/mV, 1 and 5 mm grid) as a PNG.

Alarm evidence and screening reports show clinicians what the model saw, the way a cart prints
it: lead labels, a 1 mV calibration pulse at the start of each row, and a header naming the
record, its start time and the scales. Traces come from the same rasteriser as model images, at
5 pixels per millimetre; Pillow writes the PNG and draws the text.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from edge_ecg.records.record import Record
from edge_ecg.render.paper import paper
from edge_ecg.render.raster import band_traces, coverage, plan
from edge_ecg.render.spec import RenderSpec

PX_PER_MM = 5.0
ROW_MM = 40.0  # +-2 mV around each zero line
MARGIN_MM = 10.0  # room for the calibration pulse
HEADER_PX = 64
_TWELVE = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def snapshot_spec(window: Record) -> RenderSpec:
    """12-lead grid when the window has (or can derive) the 12 leads, else every lead as a strip."""
    seconds = window.duration_s
    width = int(round(seconds * 25.0 * PX_PER_MM))
    if all(lead in window.leads for lead in _TWELVE):
        layout, leads, rows = "12lead", (), 4
    else:
        layout, leads, rows = "strips", tuple(window.leads), len(window.leads)
    height = int(round(rows * ROW_MM * PX_PER_MM))
    return RenderSpec(layout=layout, leads=leads, seconds=seconds, width=width, height=height, line_width=1.6, grid=False)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: scalable
    except TypeError:
        return ImageFont.load_default()


def snapshot_image(window: Record, title: str = ""):
    """The snapshot as a Pillow RGB image."""
    from PIL import Image, ImageDraw

    spec = snapshot_spec(window)
    p = plan(spec, float(window.fs), tuple(window.leads), window.source or window.name)
    cov = coverage(p, band_traces(p, window.signals), spec.px_per_uv, spec.line_width, spec.center)
    margin = int(MARGIN_MM * PX_PER_MM)
    grid = paper(spec.width + 2 * margin, spec.height, PX_PER_MM).copy()
    ink = (255.5 - 255.0 * cov).astype(np.uint8)[:, :, None]
    region = grid[:, margin : margin + spec.width]
    np.minimum(region, ink, out=region)
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + HEADER_PX), "white")
    canvas.paste(Image.fromarray(grid), (0, HEADER_PX))
    draw = ImageDraw.Draw(canvas)
    layout = p.layout
    label_font, head_font = _font(18), _font(20)
    mv = 1000.0 * spec.px_per_uv
    for band in range(layout.n_bands):
        base = HEADER_PX + layout.baseline(band)
        x0, x1 = margin * 0.2, margin * 0.2 + 0.2 * 25.0 * PX_PER_MM  # 200 ms wide
        draw.line([(x0 - 4, base), (x0, base), (x0, base - mv), (x1, base - mv), (x1, base), (x1 + 4, base)], fill="black", width=2)
    for panel in layout.panels:
        top = HEADER_PX + layout.band_tops[panel.band]
        draw.text((margin + panel.x0 + 6, top + 6), panel.lead, fill="black", font=label_font)
        if panel.x0 > 0:  # the short separator carts print where one lead hands over to the next
            base = HEADER_PX + layout.baseline(panel.band)
            draw.line([(margin + panel.x0, base - 25), (margin + panel.x0, base + 25)], fill="black", width=2)
    start = window.start_time.isoformat(sep=" ", timespec="seconds") if isinstance(window.start_time, dt.datetime) else "start time unknown"
    line1 = title or window.name or Path(window.source).name or "ECG"
    line2 = (
        f"{window.name or Path(window.source).name}   {start}   {window.duration_s:.1f} s at {window.fs:g} Hz   "
        f"25 mm/s   10 mm/mV   grid 1 mm / 5 mm"
    )
    draw.text((margin, 8), line1, fill="black", font=head_font)
    draw.text((margin, 36), line2, fill="black", font=label_font)
    return canvas


def snapshot_png(window: Record, path, title: str = "") -> Path:
    """Write the snapshot PNG to ``path`` (parent folders are created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot_image(window, title).save(path, format="PNG", optimize=False)
    return path
