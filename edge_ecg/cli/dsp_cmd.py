"""``edge-ecg eval qrs|alarms|noise-stress`` and ``edge-ecg bench dsp``: thin wrappers over ``edge_ecg.eval``."""

from __future__ import annotations

import sys
from pathlib import Path


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.subcommand("eval", "qrs", "QRS detection Se/+P per record and gross vs reference .atr beats, beside wfdb xqrs")
    p.add_argument("folder", type=Path, help="folder of WFDB records with .atr annotations (e.g. ../shared/ecg/mitdb-ds1)")
    p.add_argument("--block-s", type=float, default=1.0, help="stream block length in seconds (default 1)")
    p.add_argument("--no-xqrs", action="store_true", help="skip the wfdb xqrs baseline (it takes minutes)")
    p.add_argument("--records", nargs="*", help="only these record names")
    p.add_argument("--noise-stress", type=Path, default=None, help="also score the 118eNN noise-stress CSVs in this folder")
    p.set_defaults(func=_eval_qrs)

    p = cli.subcommand("eval", "noise-stress", "QRS Se/+P on the MIT-BIH noise stress excerpts (118e24..118e00)")
    p.add_argument("folder", type=Path, help="folder with 118eNN.csv and 118eNN_ann.csv (e.g. ../shared/ecg/noise-stress)")
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--no-xqrs", action="store_true", help="skip the wfdb xqrs baseline")
    p.set_defaults(func=_eval_noise)

    p = cli.subcommand("eval", "alarms", "would the VT detector have raised each CinC 2015 alarm: TPR, TNR, challenge score")
    p.add_argument("folder", type=Path, help="folder with alarms.csv and WFDB records (e.g. ../shared/ecg/cinc2015-vt)")
    p.add_argument("--kind", default="ventricular_tachycardia", help="rhythm kind to score (default ventricular_tachycardia)")
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--lead-in-s", type=float, default=60.0, help="seconds streamed before the alarm window (default 60)")
    p.add_argument("--whole", action="store_true", help="stream each whole record from its first sample instead")
    p.add_argument("--quiet", action="store_true", help="only the totals")
    p.set_defaults(func=_eval_alarms)

    p = cli.subcommand("bench", "dsp", "speed of the whole DSP chain (x real time, one core) and block-size effects")
    p.add_argument("record", type=Path, nargs="?", default=None, help="WFDB record (default: the first record of ../shared/ecg/mitdb-ds1)")
    p.add_argument("--repeat", type=int, default=3)
    p.set_defaults(func=_bench)


def _eval_qrs(args) -> int:
    from edge_ecg.eval.qrs_eval import evaluate_noise_stress, evaluate_qrs, format_noise_stress

    def progress(r):
        print(f"  {r.name}: done", file=sys.stderr, flush=True)

    report = evaluate_qrs(args.folder, block_s=args.block_s, with_xqrs=not args.no_xqrs, names=args.records, progress=progress)
    print(report.format())
    if args.noise_stress:
        print()
        print(format_noise_stress(evaluate_noise_stress(args.noise_stress, block_s=args.block_s, with_xqrs=not args.no_xqrs)))
    return 0


def _eval_noise(args) -> int:
    from edge_ecg.eval.qrs_eval import evaluate_noise_stress, format_noise_stress

    print(format_noise_stress(evaluate_noise_stress(args.folder, block_s=args.block_s, with_xqrs=not args.no_xqrs)))
    return 0


def _eval_alarms(args) -> int:
    from edge_ecg.dsp.types import RHYTHM_KINDS
    from edge_ecg.errors import InputError
    from edge_ecg.eval.alarm_eval import evaluate_alarms

    if args.kind not in RHYTHM_KINDS:
        raise InputError("--kind", f"unknown rhythm kind {args.kind!r} (known: {', '.join(RHYTHM_KINDS)})")
    report = evaluate_alarms(args.folder, kind=args.kind, block_s=args.block_s, lead_in_s=None if args.whole else args.lead_in_s)
    print(report.format(per_record=not args.quiet))
    return 0


def _bench(args) -> int:
    from edge_ecg.eval.bench import bench_dsp, default_record

    record = args.record or default_record()
    print(bench_dsp(record, repeat=args.repeat))
    return 0
