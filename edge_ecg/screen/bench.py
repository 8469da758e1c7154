"""Screening throughput, measured side by side: each precision screens the same inputs from
scratch (fresh output folder, images and report included), ``repeat`` times; medians and the
ratio to the first precision are printed. Timed here, never in a test."""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


@dataclass(frozen=True)
class ScreenBench:
    precision: str
    backend: str
    records: int
    flagged: int
    wall_s: tuple[float, ...]
    cpu_s: tuple[float, ...]

    @property
    def median_wall_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_s)

    @property
    def records_per_s(self) -> float:
        return self.records / self.median_wall_s if self.median_wall_s > 0 else 0.0


def bench_screen(inputs: Sequence[str | Path], bundle, precisions: Sequence[str] = ("int8",), repeat: int = 1,
                 backend: str = "onnxruntime", threads: int | None = None, batch_size: int = 16) -> list[ScreenBench]:
    from edge_ecg.bundle import Bundle, load_bundle
    from edge_ecg.runtimes import open_runtime
    from edge_ecg.screen.runner import ScreenOptions, screen

    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    out: list[ScreenBench] = []
    for precision in precisions:
        walls, cpus, summary = [], [], None
        for _ in range(max(1, repeat)):
            with tempfile.TemporaryDirectory(prefix="edge-ecg-bench-screen-") as tmp:
                rt = open_runtime(bundle, backend=backend, precision=precision, threads=threads)
                try:
                    opts = ScreenOptions(out_dir=Path(tmp), precision=precision, batch_size=batch_size, progress=False)
                    summary = screen(inputs, bundle, opts, runtime=rt)
                finally:
                    rt.close()
            walls.append(summary.elapsed_s)
            cpus.append(summary.cpu_s)
        out.append(ScreenBench(precision, summary.backend, summary.screened + summary.not_screened, summary.flagged,
                               tuple(walls), tuple(cpus)))
    return out


def format_bench(rows: Sequence[ScreenBench]) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"screening benchmark ({os.cpu_count()} CPUs, load average {load:.1f} at the end)",
             f"{'precision':<10}{'backend':<34}{'records':>8}{'flagged':>8}{'wall s':>9}{'CPU s':>8}{'rec/s':>8}{'ratio':>7}"]
    base = rows[0].median_wall_s if rows else 0.0
    for r in rows:
        ratio = r.median_wall_s / base if base > 0 else float("nan")
        lines.append(f"{r.precision:<10}{r.backend:<34}{r.records:>8}{r.flagged:>8}{r.median_wall_s:>9.2f}"
                     f"{r.median_cpu_s:>8.2f}{r.records_per_s:>8.2f}{ratio:>7.2f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class WorkersBench:
    """One way of running the same screening: ``workers`` processes x ``threads`` inference threads."""

    workers: int
    threads: int | None
    records: int
    wall_s: tuple[float, ...]
    load_before: tuple[float, ...]

    @property
    def median_wall_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def records_per_s(self) -> float:
        return self.records / self.median_wall_s if self.median_wall_s > 0 else 0.0

    @property
    def label(self) -> str:
        return f"{self.workers} process(es) x {self.threads or 'default'} thread(s)"


def bench_workers(inputs: Sequence[str | Path], bundle, setups: Sequence[tuple[int, int | None]] = ((1, None), (1, 1), (2, 1)),
                  repeat: int = 3, precision: str = "int8", batch_size: int = 16) -> list[WorkersBench]:
    """Whole screening runs (fresh output folder, images and report included) per setup, the setups
    interleaved round by round so that a change in the machine's load hits each of them alike."""
    from edge_ecg.screen.runner import ScreenOptions, screen

    walls: dict[tuple, list[float]] = {s: [] for s in setups}
    loads: dict[tuple, list[float]] = {s: [] for s in setups}
    records = 0
    for _ in range(max(1, repeat)):
        for workers, threads in setups:
            with tempfile.TemporaryDirectory(prefix="edge-ecg-bench-workers-") as tmp:
                loads[(workers, threads)].append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
                opts = ScreenOptions(out_dir=Path(tmp), precision=precision, batch_size=batch_size, progress=False,
                                     workers=workers, threads=threads, backend="onnxruntime")
                s = screen(inputs, bundle, opts)
            walls[(workers, threads)].append(s.elapsed_s)
            records = s.screened + s.not_screened
    return [WorkersBench(w, t, records, tuple(walls[(w, t)]), tuple(loads[(w, t)])) for w, t in setups]


def format_workers(rows: Sequence[WorkersBench]) -> str:
    lines = [f"screening throughput by worker processes ({os.cpu_count()} CPUs; load average before each run shown)",
             f"{'setup':<32}{'records':>8}{'wall s':>9}{'rec/s':>8}{'vs first':>9}  load before runs"]
    base = rows[0].records_per_s if rows else 0.0
    for r in rows:
        lines.append(f"{r.label:<32}{r.records:>8}{r.median_wall_s:>9.2f}{r.records_per_s:>8.2f}"
                     f"{r.records_per_s / base if base else float('nan'):>9.2f}  {', '.join(f'{x:.1f}' for x in r.load_before)}")
    return "\n".join(lines)
