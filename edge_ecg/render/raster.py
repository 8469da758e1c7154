"""The rasteriser: ECG traces to anti-aliased coverage, vectorised over every pixel column.

Hand-written because no imaging library does this job fast enough: Pillow's ``ImageDraw.line``
is not anti-aliased, matplotlib/Agg takes tens of milliseconds per 224 px figure, and the
bedside budget is about a millisecond per window on one Jetson core.

How it works (all numpy, no per-sample Python):

1. Each band (image row) gets one composite trace: the samples of each of its panels' leads over
   that panel's time span, so the ``12lead`` grid is four traces, like ``strips``.
2. Per pixel column: the trace value at both column edges (linear interpolation) and the min and
   max of the samples inside the column (``fmin/fmax.reduceat``: NaN samples are ignored). The
   column's ink is the vertical span from the lowest to the highest of those, widened by half the
   line width: that is exactly what a polyline covers when it is drawn one column at a time.
3. Coverage of each pixel = overlap of its row [r, r+1) with that span, clipped to the band
   (the trace is clipped, never wrapped, at panel edges). Fractional overlap at the span ends is
   the anti-aliasing.
4. Gaps: an edge value next to a NaN sample is NaN and a column with only NaN samples has no
   span, so a gap longer than a pixel column is drawn as a gap. Panel boundaries break the line
   the same way, so a panel never connects to its neighbour's lead.

Everything that depends only on (spec, rate, leads) is planned once and cached, so a call is a
handful of array operations on a few thousand values. Same input, same bytes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.render.layout import Layout, first_sample, make_layout
from edge_ecg.render.spec import RenderSpec

# III, aVR, aVL, aVF as (weight of I, weight of II): Einthoven and Goldberger.
_DERIVED = {"III": (-1.0, 1.0), "aVR": (-0.5, -0.5), "aVL": (1.0, -0.5), "aVF": (-0.5, 1.0)}


@dataclass(frozen=True)
class _Source:
    """Where a panel's samples come from: a column, or a mix of columns I and II."""

    band: int
    s0: int
    s1: int
    col: int
    mix: tuple[int, int, float, float] | None = None  # (col I, col II, weight I, weight II)


@dataclass(frozen=True)
class Plan:
    """Everything about a render that does not depend on the sample values."""

    layout: Layout
    n: int  # samples drawn (seconds * fs, rounded up)
    sources: tuple[_Source, ...]
    i0: np.ndarray  # (W+1,) sample left of each column edge
    frac: np.ndarray  # (W+1,) interpolation weight of the sample right of it
    edge_out: np.ndarray  # (W+1,) edge lies past the last sample: no value there
    starts: np.ndarray  # (W,) first sample inside each column (reduceat offsets)
    empty: np.ndarray  # (W,) column holds no sample (rate below one sample per pixel)
    left_break: np.ndarray  # (B, W) column's left edge is a panel start: do not connect
    right_break: np.ndarray  # (B, W) column's right edge is a panel end
    panel_index: np.ndarray  # (P, maxw) flat (band*W + x) index of each panel's columns, padded
    panel_of: np.ndarray  # (B, W) panel number of each column
    baselines: np.ndarray  # (B, 1) float zero line of each band
    band_tops: np.ndarray  # (B, 1) first row
    band_bottoms: np.ndarray  # (B, 1) one past the last row
    rows: np.ndarray  # (B, Hmax, 1) row index of each pixel row of each band


class _MissingLead(Exception):
    pass


def plan(spec: RenderSpec, fs: float, leads: tuple[str, ...], where: str = "") -> Plan:
    """Plan rendering windows with ``leads`` sampled at ``fs`` (cached: one plan per stream).

    ``where`` names the window in the error raised when the layout needs a lead it lacks.
    """
    try:
        return _plan(spec, float(fs), tuple(leads))
    except _MissingLead as exc:
        raise RecordError(where or "<window>", f"cannot render layout {spec.layout}: no lead {exc.args[0]!r} (has {', '.join(leads)})") from None


@functools.lru_cache(maxsize=64)
def _plan(spec: RenderSpec, fs: float, leads: tuple[str, ...]) -> Plan:
    layout = make_layout(spec, leads)
    width, n_bands = layout.width, layout.n_bands
    n = max(1, int(np.ceil(spec.seconds * fs - 1e-9)))
    spp = spec.seconds * fs / width  # samples per pixel column
    edges = np.arange(width + 1, dtype=np.float64) * spp
    i0 = np.floor(edges + 1e-9).astype(np.int64)
    frac = np.clip(edges - i0, 0.0, 1.0)
    edge_out = i0 > n - 1
    i0 = np.minimum(i0, n - 1)
    frac[i0 == n - 1] = 0.0
    starts = np.array([first_sample(x, spp) for x in range(width + 1)], dtype=np.int64)
    empty = starts[1:] <= starts[:-1]
    starts = np.minimum(starts[:-1], n - 1)

    sources = []
    left_break = np.zeros((n_bands, width), dtype=bool)
    right_break = np.zeros((n_bands, width), dtype=bool)
    panel_of = np.zeros((n_bands, width), dtype=np.int64)
    for k, p in enumerate(layout.panels):
        s0, s1 = min(first_sample(p.x0, spp), n), min(first_sample(p.x1, spp), n)
        if p.lead in leads:
            sources.append(_Source(p.band, s0, s1, leads.index(p.lead)))
        elif p.lead in _DERIVED and "I" in leads and "II" in leads:
            w1, w2 = _DERIVED[p.lead]
            sources.append(_Source(p.band, s0, s1, -1, (leads.index("I"), leads.index("II"), w1, w2)))
        else:
            raise _MissingLead(p.lead)
        if p.x0 > 0:
            left_break[p.band, p.x0] = True
        if p.x1 < width:
            right_break[p.band, p.x1 - 1] = True
        panel_of[p.band, p.x0 : p.x1] = k
    maxw = max(p.x1 - p.x0 for p in layout.panels)
    pad = n_bands * width  # index of an appended NaN
    panel_index = np.full((len(layout.panels), maxw), pad, dtype=np.int64)
    for k, p in enumerate(layout.panels):
        panel_index[k, : p.x1 - p.x0] = p.band * width + np.arange(p.x0, p.x1)
    tops = np.array(layout.band_tops, dtype=np.float64)[:, None]
    heights = np.array(layout.band_heights, dtype=np.float64)[:, None]
    rows = (tops + np.arange(max(layout.band_heights), dtype=np.float64))[:, :, None].astype(np.float32)
    return Plan(
        layout=layout, n=n, sources=tuple(sources), i0=i0, frac=frac.astype(np.float32), edge_out=edge_out,
        starts=starts, empty=empty, left_break=left_break, right_break=right_break,
        panel_index=panel_index, panel_of=panel_of,
        baselines=np.array([layout.baseline(b) for b in range(n_bands)], dtype=np.float64)[:, None], band_tops=tops, band_bottoms=tops + heights, rows=rows,
    )


def band_traces(p: Plan, signals: np.ndarray) -> np.ndarray:
    """The composite trace of each band, float32 (B, n), NaN where nothing was recorded."""
    traces = np.full((p.layout.n_bands, p.n), np.nan, dtype=np.float32)
    sig = signals[: p.n]
    for s in p.sources:
        stop = min(s.s1, sig.shape[0])
        if stop <= s.s0:
            continue
        if s.mix is None:
            traces[s.band, s.s0 : stop] = sig[s.s0 : stop, s.col]
        else:
            a, b, wa, wb = s.mix
            traces[s.band, s.s0 : stop] = wa * sig[s.s0 : stop, a] + wb * sig[s.s0 : stop, b]
    return traces


def _nan_median_rows(values: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN for an all-NaN row); faster than np.nanmedian here."""
    s = np.sort(values, axis=1)  # NaN sorts last
    count = np.sum(np.isfinite(values), axis=1)
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.maximum(count // 2, 0)
    rows = np.arange(values.shape[0])
    med = (s[rows, lo] + s[rows, hi]) * 0.5
    med[count == 0] = np.nan
    return med


def coverage(p: Plan, traces: np.ndarray, px_per_uv: float, line_width: float, center: bool) -> np.ndarray:
    """Ink coverage in [0, 1], float32 (H, W), of the band traces."""
    width = p.layout.width
    with np.errstate(invalid="ignore"):
        edge = traces[:, p.i0] * (1.0 - p.frac) + traces[:, np.minimum(p.i0 + 1, p.n - 1)] * p.frac
        edge[:, p.edge_out] = np.nan
        left = np.where(p.left_break, np.nan, edge[:, :-1])
        right = np.where(p.right_break, np.nan, edge[:, 1:])
        inner_lo = np.fmin.reduceat(traces, p.starts, axis=1)
        inner_hi = np.fmax.reduceat(traces, p.starts, axis=1)
        inner_lo[:, p.empty] = np.nan
        inner_hi[:, p.empty] = np.nan
        lo = np.fmin(np.fmin(left, right), inner_lo)
        hi = np.fmax(np.fmax(left, right), inner_hi)
        if center:
            mids = np.append(((lo + hi) * 0.5).ravel(), np.float32(np.nan))
            offset = np.nan_to_num(_nan_median_rows(mids[p.panel_index]))[p.panel_of]
            lo = lo - offset
            hi = hi - offset
        half = line_width / 2.0
        top = p.baselines - hi * px_per_uv - half  # rows grow downwards
        bottom = p.baselines - lo * px_per_uv + half
        finite = np.isfinite(top) & np.isfinite(bottom)
        # float32 from here: exact for pixel rows, and half the memory traffic of the big step
        top = np.where(finite, np.maximum(top, p.band_tops), np.inf).astype(np.float32)
        bottom = np.where(finite, np.minimum(bottom, p.band_bottoms), -np.inf).astype(np.float32)
        cov = np.minimum(p.rows + np.float32(1.0), bottom[:, None, :])
        cov -= np.maximum(p.rows, top[:, None, :])
        np.clip(cov, np.float32(0.0), np.float32(1.0), out=cov)
    layout = p.layout
    if len(set(layout.band_heights)) == 1 and sum(layout.band_heights) == layout.height:
        return cov.reshape(layout.height, width).astype(np.float32, copy=False)
    out = np.zeros((layout.height, width), dtype=np.float32)
    for b, (t, h) in enumerate(zip(layout.band_tops, layout.band_heights)):
        out[t : t + h] = cov[b, :h]
    return out
