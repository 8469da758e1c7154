"""``edge-ecg export onnx|quantize|bundle``: the factory, a checkpoint to a verified bundle.

Thin: each handler parses, calls one library function, prints what it did.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(cli) -> None:
    p = cli.subcommand("export", "onnx", "export a HeartBEiT checkpoint to ONNX (opset 17, dynamic batch)")
    p.add_argument("checkpoint", type=Path, help="a .pt written by export.models.heartbeit.save_checkpoint")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx to write")
    _spec_args(p)
    p.add_argument("--parity-data", nargs="*", type=Path, default=[], help="record files/folders for a PyTorch vs ONNX parity check")
    p.add_argument("--parity-windows", type=int, default=32)
    p.set_defaults(func=_export_onnx)

    p = cli.subcommand("export", "quantize", "FP32 ONNX -> INT8 QDQ ONNX calibrated on rendered real ECG windows")
    p.add_argument("model", type=Path, help="FP32 .onnx")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--calib", nargs="+", type=Path, required=True, help="record files/folders")
    p.add_argument("--checkpoint", type=Path, help="take the RenderSpec from this checkpoint")
    _spec_args(p)
    _calib_args(p)
    p.set_defaults(func=_export_quantize)

    p = cli.subcommand("export", "bundle", "checkpoint -> FP32 + INT8 ONNX + check windows -> verified bundle")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path)
    src.add_argument("--random-init", choices=("tiny", "small", "base"), help="untrained model (latency benchmarks only)")
    p.add_argument("-o", "--output", type=Path, required=True, help="bundle directory")
    p.add_argument("--name", help="bundle name (default: checkpoint extra 'name' or the output folder name)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--labels", help="comma-separated label names (default: from the checkpoint)")
    p.add_argument("--calib", nargs="+", type=Path, required=True, help="record files/folders")
    p.add_argument("--check-windows", type=int, default=32)
    p.add_argument("--hop-s", type=float, default=None)
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    _spec_args(p)
    _calib_args(p)
    p.set_defaults(func=_export_bundle)


def _spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=("12lead", "strips"), help="RenderSpec layout when the checkpoint has none")
    p.add_argument("--leads", help="comma-separated leads for the RenderSpec")


def _calib_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-windows", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax")


def _spec(args, extra: dict | None = None):
    from edge_ecg.render import RenderSpec

    if extra and extra.get("render") and not args.layout:
        return RenderSpec.from_dict(extra["render"])
    kw = {}
    if args.layout:
        kw["layout"] = args.layout
    if args.leads:
        kw["leads"] = tuple(s.strip() for s in args.leads.split(",") if s.strip())
    return RenderSpec(**kw)


def _export_onnx(args) -> int:
    from export.models.heartbeit import load_checkpoint
    from export.onnx_export import check_parity, export_onnx

    model, extra = load_checkpoint(args.checkpoint)
    path = export_onnx(model, args.output)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset 17, checked)")
    if args.parity_data:
        from edge_ecg.render import to_model_input
        from export.calibration import select_windows

        ws = select_windows(args.parity_data, _spec(args, extra), args.parity_windows, seed=1)
        rep = check_parity(model, path, to_model_input(ws.images))
        print(f"parity on {rep.n} real windows: max |logit diff| {rep.max_abs_diff:.3g}, "
              f"top-label agreement {rep.top_label_agreement:.4f} -> {'PASS' if rep.ok() else 'FAIL'}")
        return 0 if rep.ok() else 1
    return 0


def _export_quantize(args) -> int:
    from edge_ecg.render import to_model_input
    from export.calibration import select_windows
    from export.quantize import QuantConfig, qdq_violations, quantize_qdq

    extra = {}
    if args.checkpoint:
        from export.models.heartbeit import load_checkpoint

        _, extra = load_checkpoint(args.checkpoint)
    ws = select_windows(args.calib, _spec(args, extra), args.calib_windows, seed=args.seed)
    path = quantize_qdq(args.model, args.output, to_model_input(ws.images), QuantConfig(method=args.method))
    bad = qdq_violations(path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) calibrated on {len(ws)} windows, sha256 {ws.sha256[:16]}; "
          f"{len(bad)} Q/DQ violations")
    return 1 if bad else 0


def _export_bundle(args) -> int:
    from export.bundle_writer import bundle_from_model
    from export.calibration import WindowSet, select_windows
    from export.models.heartbeit import create_model, load_checkpoint
    from export.quantize import QuantConfig

    if args.output.exists() and not args.force:
        from edge_ecg.errors import BundleError

        raise BundleError(args.output, "already exists (pass --force to replace it)")
    extra: dict = {}
    if args.checkpoint:
        model, extra = load_checkpoint(args.checkpoint)
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else list(extra.get("labels") or [])
    if not labels:
        from edge_ecg.errors import InputError

        raise InputError(args.checkpoint or "--labels", "no labels: give --labels or a checkpoint with extra['labels']")
    if args.random_init:
        model = create_model(args.random_init, num_classes=len(labels))
    spec = _spec(args, extra)
    ws = select_windows(args.calib, spec, args.calib_windows + args.check_windows, seed=args.seed)
    # Check windows are held out of calibration: the last ones of the reproducible choice.
    k = min(args.check_windows, max(1, len(ws) // 5))
    calib = WindowSet(ws.images[:-k], ws.ids[:-k], ws.seed, ws.sources)
    check = WindowSet(ws.images[-k:], ws.ids[-k:], ws.seed, ws.sources)
    prov = {key: extra[key] for key in ("metrics", "data", "training") if key in extra}
    if args.random_init:
        prov["training"] = {"note": "random initialisation, untrained: for latency benchmarks only"}
    bundle = bundle_from_model(
        model.eval(), args.output, name=args.name or extra.get("name") or args.output.name, spec=spec, labels=labels,
        calibration=calib, check=check, quant_config=QuantConfig(method=args.method), version=args.version,
        window_s=extra.get("window_s"), hop_s=args.hop_s or extra.get("hop_s", 2.0), provenance=prov, overwrite=args.force,
    )
    par = bundle.provenance["parity_fp32"]
    print(f"wrote bundle {bundle.root} ({bundle.architecture}, {len(bundle.labels)} labels, calibrated on {len(calib)} windows); "
          f"FP32 parity max |logit diff| {par['max_abs_logit_diff']:.3g}")
    return 0
