"""``edge-ecg screen``: screen folders of stored ECGs with a bundle, offline, with a report."""

from __future__ import annotations

import sys


def register(cli) -> None:
    """Add ``screen`` to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.command("screen", "screen stored ECGs (WFDB, EDF, HL7 aECG, CSV, DICOM, SCP-ECG, MFER, ISHNE, Sierra/MUSE/"
                              "Mortara XML) with a bundle; writes results.csv and a self-contained report.html")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="record files or folders (searched recursively)")
    p.add_argument("--input-list", metavar="FILE", help="also screen the paths listed in FILE, one per line, read as "
                                                         "it goes ('-': standard input)")
    p.add_argument("--bundle", required=True, help="bundle directory (or its bundle.toml)")
    p.add_argument("--out", default="screen-out", help="output folder (default: %(default)s); re-runs resume from it")
    p.add_argument("--force", action="store_true", help="screen again records already in the output")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"), help="runtime (default: %(default)s)")
    p.add_argument("--precision", default="int8", choices=("int8", "fp32"), help="model precision (default: %(default)s)")
    p.add_argument("--aggregate", default="max", choices=("max", "mean"),
                   help="per-record probability over a record's windows (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per inference batch (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="runtime CPU threads (default: the runtime's choice)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes, one inference thread each (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="screen on a Dask cluster (tcp://host:8786); needs "
                                                            "'edge-ecg[distributed]' and the inputs at the same paths on every worker")
    p.add_argument("--chunk-size", type=int, default=8, help="records per task sent to a worker (default: %(default)s)")
    p.add_argument("--keep-identifiers", action="store_true",
                   help="keep patient name, id and birth date in results.csv and the report (left out by default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_screen)


def _screen(args) -> int:
    from edge_ecg.errors import InputError
    from edge_ecg.screen import ScreenOptions, screen
    from edge_ecg.screen.executors import default_workers

    if not args.inputs and not args.input_list:
        raise InputError("INPUT", "give record files or folders, or --input-list FILE")
    opts = ScreenOptions(out_dir=args.out, force=args.force, backend=args.backend, precision=args.precision,
                         aggregate=args.aggregate, batch_size=args.batch_size, threads=args.threads,
                         progress=not args.no_progress,
                         workers=args.workers if args.workers is not None else default_workers(),
                         scheduler=args.scheduler, keep_identifiers=args.keep_identifiers, chunk_size=args.chunk_size,
                         input_list=args.input_list)
    summary = screen(args.inputs, args.bundle, opts)
    print(summary.line())
    t = summary.timings
    if summary.screened or summary.not_screened:
        print(f"time: total {summary.elapsed_s:.2f} s ({summary.cpu_s:.2f} s CPU) = read+prepare {t.get('read_s', 0):.2f} s, "
              f"render+inference {t.get('infer_s', 0):.2f} s, images {t.get('image_s', 0):.2f} s, "
              f"report {t.get('report_s', 0):.2f} s")
    print(f"results: {summary.csv_path}")
    print(f"report:  {summary.report_path}")
    not_screened = [r for r in summary.results if not r.screened]
    for r in not_screened[:20]:
        print(f"not screened: {r.record}: {r.reason}", file=sys.stderr)
    if len(not_screened) > 20:
        print(f"... and {len(not_screened) - 20} more not screened (see the report)", file=sys.stderr)
    return 0


