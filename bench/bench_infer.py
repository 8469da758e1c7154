"""Inference latency per backend and precision, side by side (the library's ``benchmark``).

    python bench/bench_infer.py BUNDLE [--backends onnxruntime,tensorrt] [--threads N]
    python bench/bench_infer.py --make-base out/base-random   # an untrained base bundle for latency

Same numbers as ``edge-ecg bench infer``; this script can also build the untrained ``base`` bundle
it measures (random weights do not change latency; calibrated on real MIT-BIH windows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path, nargs="?")
    ap.add_argument("--make-base", type=Path, help="write an untrained base bundle here first")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "ecg" / "mitdb-ds1")
    ap.add_argument("--backends", default="onnxruntime")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    from edge_ecg.cli import main as cli

    bundle = args.bundle
    if args.make_base:
        rc = cli(["export", "bundle", "--random-init", "base", "-o", str(args.make_base), "--labels", "a,b,c",
                  "--calib", str(args.data), "--layout", "strips", "--calib-windows", "128",
                  "--check-windows", "16", "--force"])
        if rc:
            return rc
        bundle = bundle or args.make_base
    if bundle is None:
        ap.error("give a BUNDLE or --make-base DIR")
    extra = ["--threads", str(args.threads)] if args.threads else []
    return cli(["bench", "infer", str(bundle), "--backends", args.backends, "--precisions", args.precisions,
                "--batch", str(args.batch), "--runs", str(args.runs), *extra])


if __name__ == "__main__":
    raise SystemExit(main())
