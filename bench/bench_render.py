"""Render speed: edge_ecg.render vs a straightforward matplotlib renderer (same as ``edge-ecg bench render``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# one core: keep numpy's threaded kernels (if any) from spreading the time over several
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from edge_ecg.render.benchmark import run_benchmark  # noqa: E402


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=500, help="timed renders of ours (matplotlib: 30)")
    args = parser.parse_args()
    result = run_benchmark(repeats=args.repeats)
    print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
