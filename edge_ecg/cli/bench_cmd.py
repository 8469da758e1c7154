"""``edge-ecg bench ...``: every benchmark, side by side in one place.

Thin: each handler parses, calls its area's benchmark function and prints medians and ratios
measured in one run (numbers come from benchmarks, never from timed tests).
"""

from __future__ import annotations

from pathlib import Path


def register(cli) -> None:
    b = cli.subcommand("bench", "decode", "wire decoder throughput for 12 leads at 500 Hz, as a multiple of real time")
    b.add_argument("--seconds", type=float, default=120.0, help="seconds of signal to encode and decode")
    b.add_argument("--repeats", type=int, default=5, help="timed repeats (the median is reported)")
    b.set_defaults(func=_decode)
    p = cli.subcommand("bench", "dsp", "speed of the whole DSP chain (x real time, one core) and block-size effects")
    p.add_argument("record", type=Path, nargs="?", default=None, help="WFDB record (default: the first record of ../shared/ecg/mitdb-ds1)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--write", action="store_true", help="also write the figures to docs/results/bench-dsp.json")
    p.set_defaults(func=_dsp)
    p = cli.subcommand("bench", "csv-memory", "peak memory of reading a large CSV record, as a ratio to the file size")
    p.add_argument("--mb", type=float, default=100.0, help="CSV size in MB (default 100)")
    p.add_argument("--repeat", type=int, default=3, help="reads, each in a fresh process; the median is printed")
    p.add_argument("--record", help="a record to tile into the CSV (default: a synthetic 12-lead)")
    p.add_argument("--write-result", action="store_true", help="also write docs/results/csv_memory.json")
    p.set_defaults(func=_csv_memory)
    p = cli.subcommand("bench", "render", "render speed: edge_ecg.render vs matplotlib, same 12-lead window, one run")
    p.add_argument("--repeats", type=int, default=500)
    p.set_defaults(func=_render)
    p = cli.subcommand("bench", "soak", "replay >= 1 h of 12-lead 500 Hz input as fast as possible: real-time factor, CPU, RSS")
    p.add_argument("--bundle", type=Path, default=None, help="bundle to run (default: bundles/ tiny/rhythm if present)")
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hop", type=float, default=2.0)
    p.set_defaults(func=_soak)
    b = cli.subcommand("bench", "screen", "screening throughput per precision, side by side (median wall/CPU s, records/s)")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="record files or folders")
    b.add_argument("--bundle", required=True, help="bundle directory")
    b.add_argument("--precisions", default="int8", help="comma-separated, first is the ratio's base (default: %(default)s)")
    b.add_argument("--repeat", type=int, default=1, help="runs per precision; the median is printed (default: %(default)s)")
    b.add_argument("--backend", default="onnxruntime", choices=("auto", "onnxruntime", "tensorrt"))
    b.add_argument("--threads", type=int, default=None, help="runtime CPU threads (default: the runtime's choice)")
    b.add_argument("--batch-size", type=int, default=16)
    b.set_defaults(func=_screen)
    w = cli.subcommand("bench", "screen-workers", "screening records/s with 1 and 2 worker processes, side by side")
    w.add_argument("inputs", nargs="+", metavar="INPUT", help="record files or folders")
    w.add_argument("--bundle", required=True, help="bundle directory")
    w.add_argument("--setups", default="1x0,1x1,2x1",
                   help="PROCESSESxTHREADS, comma-separated; 0 threads = the runtime's default; the first is the "
                        "ratio's base (default: %(default)s)")
    w.add_argument("--repeat", type=int, default=3, help="rounds; setups are interleaved, medians printed")
    w.add_argument("--write-result", action="store_true", help="also write docs/results/screen_workers.json")
    w.set_defaults(func=_screen_workers)
    p = cli.subcommand("bench", "infer", "latency p50/p99 and throughput per backend and precision, side by side")
    p.add_argument("bundle", type=Path)
    p.add_argument("--backends", default="onnxruntime", help="comma-separated: onnxruntime,tensorrt")
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    p.set_defaults(func=_infer)


def _decode(args) -> int:
    from firmware_bridge.throughput import print_decode_bench

    print_decode_bench(seconds=args.seconds, repeats=args.repeats)
    return 0


def _dsp(args) -> int:
    from edge_ecg.eval.bench import bench_dsp_result, default_record, format_bench

    record = args.record or default_record()
    result = bench_dsp_result(record, repeat=args.repeat)
    print(format_bench(result))
    if args.write:
        from edge_ecg.cli.dsp_cmd import _shown
        from edge_ecg.results import write_result

        shown = "" if args.record is None else " " + _shown(args.record)
        write_result("bench-dsp", result, command=f"edge-ecg bench dsp{shown}")
    return 0


def _render(args) -> int:
    from edge_ecg.render.benchmark import run_benchmark

    print(run_benchmark(repeats=args.repeats).report())
    return 0


def _csv_memory(args) -> int:
    from edge_ecg.records.bench import bench_csv_memory, format_csv_memory

    b = bench_csv_memory(args.mb, args.repeat, args.record)
    print(format_csv_memory(b))
    if args.write_result:
        from edge_ecg.results import write_result

        print(f"wrote {write_result('csv_memory', b.as_dict())}")
    return 0


def _soak(args) -> int:
    import runpy
    import sys

    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_soak.py"
    if not bench.is_file():
        print("edge-ecg: bench/bench_soak.py is part of the source checkout, not the installed package", file=sys.stderr)
        return 2
    argv = [str(bench), "--hours", str(args.hours), "--threads", str(args.threads), "--hop", str(args.hop)]
    if args.bundle:
        argv += ["--bundle", str(args.bundle)]
    sys.argv = argv
    runpy.run_path(str(bench), run_name="__main__")
    return 0


def _screen_workers(args) -> int:
    from edge_ecg.screen.bench import bench_workers, format_workers

    setups = []
    for item in args.setups.split(","):
        p, t = item.strip().split("x")
        setups.append((int(p), int(t) or None))
    rows = bench_workers(args.inputs, args.bundle, setups, repeat=args.repeat)
    print(format_workers(rows))
    if args.write_result:
        from edge_ecg.results import write_result

        base = rows[0].records_per_s
        data = {"setups": [{"workers": r.workers, "threads": r.threads, "records": r.records, "wall_s": list(r.wall_s),
                            "median_wall_s": r.median_wall_s, "records_per_s": r.records_per_s,
                            "ratio_to_first": r.records_per_s / base if base else None,
                            "load_average_before_runs": list(r.load_before)} for r in rows],
                "target_ratio_2_workers": 1.8}
        print(f"wrote {write_result('screen_workers', data)}")
    return 0


def _screen(args) -> int:
    from edge_ecg.screen.bench import bench_screen, format_bench

    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    rows = bench_screen(args.inputs, args.bundle, precisions, repeat=args.repeat, backend=args.backend,
                        threads=args.threads, batch_size=args.batch_size)
    print(format_bench(rows))
    return 0


def _infer(args) -> int:
    from edge_ecg.bundle import load_bundle
    from edge_ecg.runtimes.check import benchmark, format_bench

    bundle = load_bundle(args.bundle)
    rows = benchmark(bundle, [b.strip() for b in args.backends.split(",")], [p.strip() for p in args.precisions.split(",")],
                     batch=args.batch, runs=args.runs, threads=args.threads)
    print(f"bench infer {bundle.name} ({bundle.architecture}), batch {args.batch}, {args.runs} runs each, interleaved")
    print(format_bench(rows))
    return 0
