"""Render speed, measured side by side against a straightforward matplotlib renderer.

The reference draws the same layout the way one would without a custom rasteriser: a matplotlib
figure of the same pixel size, one axes per panel, one ``plot`` per lead segment, Agg canvas to
RGB array. It is timed twice: building the figure per window (the straightforward way) and
reusing one figure and only swapping line data (matplotlib at its best), so the ratio is honest.
matplotlib is a dev dependency and is imported only here.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.records.record import Record
from edge_ecg.render.layout import make_layout
from edge_ecg.render.model_view import render
from edge_ecg.render.spec import RenderSpec

_DERIVED = {"III": (-1.0, 1.0), "aVR": (-0.5, -0.5), "aVL": (1.0, -0.5), "aVF": (-0.5, 1.0)}


def _lead(window: Record, name: str) -> np.ndarray:
    if name in window.leads:
        return window.lead(name)
    wa, wb = _DERIVED[name]
    return wa * window.lead("I") + wb * window.lead("II")


class MatplotlibRenderer:
    """The same layout drawn with matplotlib (Agg); ``reuse`` keeps one figure between windows."""

    def __init__(self, spec: RenderSpec, reuse: bool = False) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        self.spec = spec
        self.reuse = reuse
        self._fig = None

    def _build(self, window: Record):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        spec = self.spec
        layout = make_layout(spec, window.leads)
        dpi = 100.0
        fig = Figure(figsize=(spec.width / dpi, spec.height / dpi), dpi=dpi, facecolor="white")
        canvas = FigureCanvasAgg(fig)
        n = int(np.ceil(spec.seconds * window.fs - 1e-9))
        half_band_uv = [h / 2.0 / spec.px_per_uv for h in layout.band_heights]
        lines = []
        for p in layout.panels:
            top, h = layout.band_tops[p.band], layout.band_heights[p.band]
            ax = fig.add_axes((p.x0 / spec.width, 1 - (top + h) / spec.height, (p.x1 - p.x0) / spec.width, h / spec.height))
            ax.set_axis_off()
            s0 = int(np.ceil(p.x0 * spec.seconds * window.fs / spec.width - 1e-9))
            s1 = int(np.ceil(p.x1 * spec.seconds * window.fs / spec.width - 1e-9))
            t = np.arange(s0, s1) / window.fs
            ax.set_xlim(p.x0 * spec.seconds / spec.width, p.x1 * spec.seconds / spec.width)
            ax.set_ylim(-half_band_uv[p.band], half_band_uv[p.band])
            (line,) = ax.plot(t, np.zeros_like(t), color="black", linewidth=spec.line_width * 72.0 / dpi, antialiased=True)
            lines.append((line, p.lead, s0, min(s1, n)))
        return fig, canvas, lines

    def __call__(self, window: Record) -> np.ndarray:
        if self._fig is None or not self.reuse:
            self._fig = self._build(window)
        fig, canvas, lines = self._fig
        for line, lead, s0, s1 in lines:
            y = _lead(window, lead)[s0:s1]
            if self.spec.center:
                y = y - np.nanmedian(y)
            line.set_ydata(y)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


@dataclass
class BenchResult:
    source: str
    ours_ms: float
    mpl_ms: float
    mpl_reused_ms: float
    machine: str

    @property
    def ratio(self) -> float:
        return self.mpl_ms / self.ours_ms

    @property
    def ratio_reused(self) -> float:
        return self.mpl_reused_ms / self.ours_ms

    def report(self) -> str:
        return "\n".join(
            [
                f"render benchmark: 12-lead 10 s window at 224x224, one thread ({self.machine})",
                f"window: {self.source}",
                f"edge_ecg.render            median {self.ours_ms:8.3f} ms",
                f"matplotlib (new figure)    median {self.mpl_ms:8.3f} ms   ratio {self.ratio:6.1f}x",
                f"matplotlib (reused figure) median {self.mpl_reused_ms:8.3f} ms   ratio {self.ratio_reused:6.1f}x",
                f"target: <= 1 ms and >= 10x: {'met' if self.ours_ms <= 1.0 and self.ratio >= 10 else 'NOT met'}",
            ]
        )


def synthetic_window(fs: float = 500.0, seconds: float = 10.0) -> Record:
    """A 12-lead window of Gaussian P-QRS-T beats at 72 bpm with lead-specific gains and noise."""
    t = np.arange(int(fs * seconds)) / fs
    rng = np.random.default_rng(0)
    phase = (t % (60 / 72.0))
    beat = (
        150 * np.exp(-(((phase - 0.10) / 0.025) ** 2))
        + 1200 * np.exp(-(((phase - 0.25) / 0.010) ** 2))
        - 200 * np.exp(-(((phase - 0.27) / 0.008) ** 2))
        + 300 * np.exp(-(((phase - 0.50) / 0.050) ** 2))
    )
    gains = np.array([0.6, 1.0, 0.4, -0.8, 0.2, 0.7, -0.5, 0.3, 0.8, 1.2, 1.1, 0.9])
    sig = beat[:, None] * gains[None, :] + rng.normal(0, 15, (t.size, 12))
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    return Record(sig.astype(np.float32), fs, leads, name="synthetic")


def find_ludb_window(shared: Path | None = None) -> Record | None:
    """LUDB record 1 from ``../shared/ecg`` (or $EDGE_ECG_SHARED), if present."""
    from edge_ecg.records import read_record

    if shared is not None:
        roots = [shared]
    elif "EDGE_ECG_SHARED" in os.environ:
        roots = [Path(os.environ["EDGE_ECG_SHARED"])]
    else:  # beside the working directory, or beside the checkout this package lives in
        roots = [Path.cwd().parent / "shared", Path(__file__).resolve().parents[3] / "shared"]
    for root in roots:
        hea = root / "ecg" / "ludb" / "data" / "1.hea"
        if hea.is_file():
            return read_record(hea)
    return None


def _median_ms(fn, window: Record, repeats: int) -> float:
    fn(window)  # warm caches and imports
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(window)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def run_benchmark(window: Record | None = None, repeats: int = 500, mpl_repeats: int = 30) -> BenchResult:
    """Time both renderers on the same window in the same process."""
    source = "given"
    if window is None:
        window = find_ludb_window()
        source = f"LUDB record 1 ({window.source})" if window is not None else ""
    if window is None:
        window = synthetic_window()
        source = "synthetic 12-lead (LUDB not found under ../shared/ecg)"
    spec = RenderSpec()
    ours = _median_ms(lambda w: render(w, spec), window, repeats)
    mpl = _median_ms(MatplotlibRenderer(spec), window, mpl_repeats)
    mpl_reused = _median_ms(MatplotlibRenderer(spec, reuse=True), window, mpl_repeats)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"
    return BenchResult(source, ours, mpl, mpl_reused, machine)
