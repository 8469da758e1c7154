"""Benchmark of the streaming DSP chain: ``python bench/bench_dsp.py [RECORD]`` (same as ``edge-ecg bench dsp``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_ecg.eval.bench import bench_dsp, default_record  # noqa: E402

if __name__ == "__main__":
    print(bench_dsp(sys.argv[1] if len(sys.argv) > 1 else default_record()))
