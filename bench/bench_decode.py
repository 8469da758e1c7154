"""Benchmark: cart wire decoder throughput, 12 leads at 500 Hz, as a multiple of real time.

Run from the repository root: ``python bench/bench_decode.py`` (or ``edge-ecg bench decode``).
Target: >= 200x real time on one core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.throughput import print_decode_bench  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print_decode_bench(seconds=args.seconds, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
