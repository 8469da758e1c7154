"""``edge-ecg engine build|verify``: a bundle's TensorRT engine, built and checked on the device.

Thin: each handler parses, calls one library function (``edge_ecg.runtimes``), prints what it did.
"""

from __future__ import annotations

from pathlib import Path


def register(cli) -> None:
    p = cli.subcommand("engine", "build", "build (or reuse) the TensorRT engine of a bundle on this device")
    p.add_argument("bundle", type=Path)
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--workspace-mb", type=int, default=1024)
    p.add_argument("--force", action="store_true", help="rebuild even when a cached engine matches")
    p.set_defaults(func=_engine_build)

    p = cli.subcommand("engine", "verify", "engine vs ONNX Runtime on the bundle's check windows: agreement, max diff, latency")
    p.add_argument("bundle", type=Path)
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    p.add_argument("--backend", choices=("tensorrt", "onnxruntime", "auto"), default="tensorrt")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--against", choices=("same", "fp32"), default="same",
                   help="reference: ONNX Runtime at the same precision (default), or the FP32 graph (INT8 vs FP32 decisions)")
    p.add_argument("--min-agreement", type=float, default=0.99)
    p.set_defaults(func=_engine_verify)


def _engine_build(args) -> int:
    from edge_ecg.bundle import load_bundle
    from edge_ecg.runtimes.tensorrt_runtime import build_engine_file

    bundle = load_bundle(args.bundle)
    path = build_engine_file(bundle, args.precision, args.max_batch, workspace=args.workspace_mb << 20, force=args.force)
    print(f"engine {path}")
    return 0


def _engine_verify(args) -> int:
    from edge_ecg.bundle import load_bundle
    from edge_ecg.runtimes.check import verify

    rep = verify(load_bundle(args.bundle), args.backend, args.precision, runs=args.runs, threads=args.threads,
                 against=None if args.against == "same" else args.against)
    print("\n".join(rep.lines()))
    return 0 if rep.ok(args.min_agreement) else 1


