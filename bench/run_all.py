"""Every benchmark of the project in one run (``make bench``), each printing its medians and ratios.

Run on an otherwise idle machine: the numbers quoted in the README come from here, with the
machine they ran on. A benchmark whose inputs are missing (``../shared/ecg``, a bundle) says so
and the others still run.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ECG = REPO.parent / "shared" / "ecg"


def _runs(out: Path) -> list[tuple[str, list[str]]]:
    py = [sys.executable]
    runs = [
        ("render", py + [str(REPO / "bench" / "bench_render.py")]),
        ("decode", py + [str(REPO / "bench" / "bench_decode.py")]),
        ("dsp", py + [str(REPO / "bench" / "bench_dsp.py")]),
        ("infer (untrained base, latency only)", py + [str(REPO / "bench" / "bench_infer.py"), "--make-base", str(out / "base-random"), "--threads", "1", "--runs", "20"]),
        ("train (throughput of the configs, make bundles estimate)", py + [str(REPO / "bench" / "bench_train.py")]),
        ("soak (1 h of 12-lead 500 Hz)", py + [str(REPO / "bench" / "bench_soak.py"), "--hours", "1", "--threads", "1"]),
    ]
    if (ECG / "ludb").is_dir() and (REPO / "bundles" / "12lead-screen").is_dir():
        runs.append(("screen (200 LUDB records)", py + ["-m", "edge_ecg", "bench", "screen", str(ECG / "ludb"),
                                                       "--bundle", str(REPO / "bundles" / "12lead-screen")]))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", help="comma-separated names to run (render, decode, dsp, infer, train, soak, screen)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "bench")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    failed = []
    for name, cmd in _runs(args.out):
        if args.only and name.split()[0] not in args.only.split(","):
            continue
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=REPO)
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
