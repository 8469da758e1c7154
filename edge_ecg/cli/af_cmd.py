"""``edge-ecg eval af DIR``: the classical AF detector's Se and Sp (a thin wrapper over ``edge_ecg.eval.af_eval``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.subcommand(
        "eval", "af",
        "atrial fibrillation: per-record Se/Sp out of fold (CinC 2017 REFERENCE.csv), per record (LUDB ludb.csv), "
        "or per minute and per episode (WFDB records with (AFIB rhythm annotations)")
    p.add_argument("folder", type=Path, help="e.g. ../shared/ecg/cinc2017, ../shared/ecg/ludb or ../shared/ecg/mitdb-ds1")
    p.add_argument("--folds", type=int, default=10, help="cross-validation folds on a CinC 2017 folder (default 10)")
    p.add_argument("--seed", type=int, default=0, help="fold assignment seed (default 0)")
    p.add_argument("--limit", type=int, default=None, help="CinC 2017: only this many records, spread over the list (quick look)")
    p.add_argument("--records", nargs="*", help="WFDB: only these record names")
    p.add_argument("--cache", type=Path, default=Path(".cache") / "af", help="per-record cache of what the AF detector is fed per beat (default .cache/af)")
    p.add_argument("--no-cache", action="store_true", help="stream every record again and keep nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures instead of the table")
    p.add_argument("--no-result", action="store_true", help="do not write docs/results/af-<folder>.json")
    p.add_argument("--jobs", type=int, default=1, help="processes streaming records in parallel (default 1)")
    p.add_argument("--write-model", type=Path, default=None, metavar="PATH",
                   help="write what the folder's procedure selects on all its records: the per-recording model "
                        "(CinC 2017) or the alarm threshold (WFDB); edge_ecg/dsp/af_model.json is the shipped file")
    p.set_defaults(func=_eval_af)


def _eval_af(args) -> int:
    from edge_ecg.eval.af_eval import evaluate_af, model_file_payload
    from edge_ecg.results import write_result

    def progress(i: int, n: int) -> None:
        if not args.json and (i % 500 == 0 or i == n):
            print(f"  streamed {i}/{n}", file=sys.stderr, flush=True)

    report, model = evaluate_af(args.folder, cache=None if args.no_cache else args.cache, folds=args.folds,
                                seed=args.seed, limit=args.limit, names=args.records, jobs=args.jobs, progress=progress)
    if args.json:
        print(json.dumps(report.results, sort_keys=False))
    else:
        print(report.format())
    if not args.no_result:
        path = write_result(f"af-{args.folder.resolve().name}", report.results)
        if not args.json:
            print(f"wrote {path}")
    if args.write_model is not None and model is not None:
        kind = report.kind if report.kind == "cinc2017" else args.folder.resolve().name
        args.write_model.write_text(json.dumps(model_file_payload(model, kind, report.results), indent=1) + "\n")
        if not args.json:
            print(f"wrote {args.write_model}")
    return 0
