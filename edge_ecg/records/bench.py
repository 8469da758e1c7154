"""Peak memory of reading a large CSV record: the chunked reader against the file's own size.

A 143 MB CSV once cost 1.39 GB (the whole text, its lines and a float64 table at once); the
reader now parses ``CHUNK_LINES`` rows at a time into float32. This bench writes a CSV of about
``size_mb`` MB (a real record tiled, or a synthetic one), reads it with ``read_record`` in a fresh
process ``repeat`` times, and prints the peak resident memory each read added over the process's
state just before it (``ru_maxrss``), as a ratio to the file size. Timed here, never in a test.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, resource, sys, time
import numpy
from edge_ecg.records import read_record
import edge_ecg.records.csv_format
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
rec = read_record(sys.argv[1])
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "peak_kb": peak, "wall_s": wall, "samples": rec.n_samples,
                  "leads": len(rec.leads), "fs": rec.fs, "signals_bytes": int(rec.signals.nbytes)}))
"""


@dataclass(frozen=True)
class CsvMemoryBench:
    file_bytes: int
    samples: int
    leads: int
    signals_bytes: int
    peak_added_bytes: tuple[int, ...]
    wall_s: tuple[float, ...]

    @property
    def median_peak_bytes(self) -> float:
        return statistics.median(self.peak_added_bytes)

    @property
    def ratio(self) -> float:
        return self.median_peak_bytes / self.file_bytes

    def as_dict(self) -> dict:
        return {"file_mb": self.file_bytes / 1e6, "samples": self.samples, "leads": self.leads,
                "signals_mb": self.signals_bytes / 1e6, "peak_added_mb": [b / 1e6 for b in self.peak_added_bytes],
                "median_peak_added_mb": self.median_peak_bytes / 1e6, "peak_to_file_ratio": self.ratio,
                "target_ratio": 2.0, "wall_s": list(self.wall_s), "median_wall_s": statistics.median(self.wall_s)}


def write_big_csv(path: Path, size_mb: float, record=None) -> Path:
    """A CSV of about ``size_mb`` MB in the project's convention: ``record`` tiled end to end (a real
    ECG), else 12 leads of random-walk microvolts at 500 Hz."""
    from edge_ecg.records import Record

    if record is None:
        rng = np.random.default_rng(0)
        sig = np.cumsum(rng.normal(0, 5, (5000, 12)), axis=0).astype(np.float32)
        record = Record(signals=sig, fs=500.0, leads=("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"))
    n, k = record.signals.shape
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"# edge-ecg csv 1\n# fs: {record.fs:g}\n")
        fh.write(",".join(["time_s"] + [f"{lead} (uV)" for lead in record.leads]) + "\n")
        row0 = 0
        while fh.tell() < size_mb * 1e6:
            t = (row0 + np.arange(n)) / record.fs
            block = np.column_stack([t, record.signals.astype(np.float64)])
            np.savetxt(fh, block, delimiter=",", fmt=["%.6f"] + ["%.3f"] * k)
            row0 += n
    return path


def bench_csv_memory(size_mb: float = 100.0, repeat: int = 3, record_path: str | None = None) -> CsvMemoryBench:
    record = None
    if record_path:
        from edge_ecg.records import read_record

        record = read_record(record_path)
    with tempfile.TemporaryDirectory(prefix="edge-ecg-csv-bench-") as tmp:
        path = write_big_csv(Path(tmp) / "big.csv", size_mb, record)
        size = path.stat().st_size
        peaks, walls, info = [], [], {}
        for _ in range(max(1, repeat)):
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                                  check=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            peaks.append((info["peak_kb"] - info["base_kb"]) * 1024)
            walls.append(info["wall_s"])
    return CsvMemoryBench(size, info["samples"], info["leads"], info["signals_bytes"], tuple(peaks), tuple(walls))


def format_csv_memory(b: CsvMemoryBench) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join([
        f"CSV read peak memory ({os.cpu_count()} CPUs, load average {load:.1f} at the end)",
        f"file {b.file_bytes / 1e6:.1f} MB: {b.samples} samples x {b.leads} leads -> signals {b.signals_bytes / 1e6:.1f} MB float32",
        f"peak memory added by read_record: median {b.median_peak_bytes / 1e6:.1f} MB "
        f"(runs: {', '.join(f'{p / 1e6:.1f}' for p in b.peak_added_bytes)} MB) = {b.ratio:.2f}x the file size (target < 2x)",
        f"read time: median {statistics.median(b.wall_s):.2f} s",
    ])
