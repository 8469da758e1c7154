"""Speed of the DSP chain, measured side by side in one run (medians of repeats, one core).

"x real time" = stream seconds / CPU seconds of this process (``time.process_time``), which is
what one core delivers regardless of other load on the machine; wall-clock is printed beside it.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from edge_ecg.errors import InputError
from edge_ecg.eval.qrs_eval import stream_record
from edge_ecg.records import Record, read_record


def default_record() -> Path:
    import os

    here = Path(__file__).resolve().parents[2]
    shared = Path(os.environ.get("EDGE_ECG_SHARED", here.parent / "shared"))  # as tests/conftest.py
    folder = shared / "ecg" / "mitdb-ds1"
    heads = sorted(folder.glob("*.hea"))
    if not heads:
        raise InputError(folder, "no record given and the default MIT-BIH DS1 folder is absent")
    return heads[0]


def _time(fn, repeat: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def bench_dsp(path: str | Path, repeat: int = 3, seconds: float | None = 600.0) -> str:
    """Time the whole chain (filters + QRS + morphology + quality + rhythm) on ``path``'s first
    ``seconds`` at several block sizes, the QRS detector alone, and wfdb's xqrs on the same span."""
    return format_bench(bench_dsp_result(path, repeat, seconds))


def bench_dsp_result(path: str | Path, repeat: int = 3, seconds: float | None = 600.0) -> dict:
    """The figures ``bench_dsp`` prints, as a result dict (CPU and wall seconds, x real time)."""
    from edge_ecg.dsp.qrs import QrsDetector

    rec: Record = read_record(path)
    if seconds is not None:
        rec = rec.slice(0, int(seconds * rec.fs))
    dur = rec.duration_s
    load_before = _load_average()
    rows = []
    for block_s in (0.1, 1.0, 10.0):
        cpu, wall = _time(lambda: stream_record(rec, block_s), repeat)
        rows.append((f"whole chain, {block_s:g} s blocks", cpu, wall))

    def qrs_only():
        det = QrsDetector(rec.fs, len(rec.leads))
        step = int(rec.fs)
        x = rec.signals.astype(np.float64)
        for a in range(0, rec.n_samples, step):
            det.process(x[a : a + step], a)

    cpu, wall = _time(qrs_only, repeat)
    rows.append(("QRS detector alone, 1 s blocks", cpu, wall))
    try:
        from edge_ecg.eval.qrs_eval import xqrs_detect

        cpu, wall = _time(lambda: xqrs_detect(rec), 1)
        rows.append(("wfdb xqrs (offline, 1 lead)", cpu, wall))
    except ImportError:  # wfdb is a dependency, but the bench must still print ours
        pass
    # the AF detector's share: the same chain with the AF condition switched off
    from edge_ecg.dsp.af import AfConfig
    from edge_ecg.dsp.config import AnalyzerConfig

    cpu, wall = _time(lambda: stream_record(rec, 1.0, AnalyzerConfig(af=AfConfig(enabled=False))), repeat)
    rows.append(("whole chain without AF, 1 s blocks", cpu, wall))
    base = rows[1][1]
    return {"record": rec.name, "seconds": round(dur, 1), "leads": len(rec.leads), "fs": rec.fs, "repeat": repeat,
            "rows": [{"what": name, "cpu_s": round(cpu, 4), "x_real_time": round(dur / cpu, 1), "wall_s": round(wall, 4),
                      "vs_chain_1s": round(base / cpu, 3)} for name, cpu, wall in rows],
            "target_x_real_time": 300, "met": dur / base >= 300,
            # other work on the machine inflates CPU time too (shared caches, frequency): say how much there was
            "load_average_1m": {"before": load_before, "after": _load_average()}, "cpus": os.cpu_count()}


def _load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def format_bench(r: dict) -> str:
    lines = [
        f"record {r['record']}: {r['seconds']:.0f} s, {r['leads']} leads at {r['fs']:g} Hz; median of {r['repeat']} runs (xqrs: 1)",
        f"{'what':<34} {'CPU s':>7} {'x real time':>12} {'wall s':>7} {'vs chain@1s':>12}",
    ]
    for row in r["rows"]:
        lines.append(f"{row['what']:<34} {row['cpu_s']:7.3f} {row['x_real_time']:12.0f} {row['wall_s']:7.3f} {row['vs_chain_1s']:11.2f}x")
    x = r["rows"][1]["x_real_time"]
    la = r.get("load_average_1m")
    if la:
        lines.append(f"load average (1 min) before / after: {la['before']} / {la['after']} on {r.get('cpus')} CPUs")
    lines.append(f"target: whole chain >= {r['target_x_real_time']}x real time on one core at 1 s blocks: {'met' if r['met'] else 'NOT met'} ({x:.0f}x)")
    return "\n".join(lines)
