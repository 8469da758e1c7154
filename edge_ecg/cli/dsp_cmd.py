"""``edge-ecg eval qrs|noise-stress|alarms|stream|census``: thin wrappers over ``edge_ecg.eval``.

Every ``eval`` subcommand prints a table, or with ``--json`` one JSON object (fractions, not
percentages) that fleet tools and regression checks read; ``--write`` also stores the figures as
``docs/results/<name>.json`` (``edge_ecg.results.write_result``).
"""

from __future__ import annotations

import json
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
    p.add_argument("--annotator", default="atr", help="reference annotation file extension (atr; ii for LUDB's lead II)")
    _outputs(p)
    p.set_defaults(func=_eval_qrs)

    p = cli.subcommand("eval", "noise-stress", "QRS Se/+P on the MIT-BIH noise stress excerpts (118e24..118e00)")
    p.add_argument("folder", type=Path, help="folder with 118eNN.csv and 118eNN_ann.csv (e.g. ../shared/ecg/noise-stress)")
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--no-xqrs", action="store_true", help="skip the wfdb xqrs baseline")
    _outputs(p)
    p.set_defaults(func=_eval_noise)

    p = cli.subcommand("eval", "alarms", "would the VT detector have raised each CinC 2015 alarm: TPR, TNR, challenge score")
    p.add_argument("folder", type=Path, help="folder with alarms.csv and WFDB records (e.g. ../shared/ecg/cinc2015-vt)")
    p.add_argument("--kind", default="ventricular_tachycardia", help="rhythm kind to score (default ventricular_tachycardia)")
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--lead-in-s", type=float, default=60.0, help="seconds streamed before the alarm window (default 60)")
    p.add_argument("--whole", action="store_true", help="stream each whole record from its first sample instead")
    p.add_argument("--no-pulse", action="store_true", help="judge on the ECG leads alone (ignore PLETH/ABP)")
    p.add_argument("--cv", action="store_true",
                   help="out-of-fold figures: evidence limits chosen in record-grouped folds (whole records, cached), "
                        "beside raise-every-alarm and the previous detector, with 95%% bootstrap intervals")
    p.add_argument("--folds", type=int, default=5, help="--cv folds (default 5)")
    p.add_argument("--seeds", type=int, default=1,
                   help="--cv: also the mean, min and max over this many fold assignments (seeds 0..N-1; default 1: seed 0 only)")
    p.add_argument("--jobs", type=int, default=1, help="--cv: records streamed in parallel (default 1)")
    p.add_argument("--cache", type=Path, default=None, help="--cv: folder for the per-record logs (default .cache/eval/alarms)")
    p.add_argument("--streams", type=Path, default=None, metavar="DIR",
                   help="--cv: long annotated WFDB records (e.g. ../shared/ecg/mitdb-ds1) that join the selection in the "
                        "same folds: their VT episodes and false alarms count in the score, and their false alarms per hour "
                        "are reported out of fold")
    p.add_argument("--bundle", type=Path, default=None,
                   help="a triage bundle: also print the model alone and the combination the daemon would use")
    p.add_argument("--config", type=Path, default=None,
                   help="daemon config whose [dsp] and [alarms.triage] apply (default: the shipped systemd/edge-ecg.toml)")
    p.add_argument("--quiet", action="store_true", help="only the totals")
    _outputs(p)
    p.set_defaults(func=_eval_alarms)

    p = cli.subcommand("eval", "stream", "replay whole records through the daemon's DSP chain: alarms raised, true, false, "
                                         "false per hour and missed episodes per condition")
    p.add_argument("folder", type=Path, help="WFDB records with .atr annotations (e.g. ../shared/ecg/mitdb-ds1) or the noise-stress excerpts")
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--records", nargs="*", help="only these record names")
    p.add_argument("--config", type=Path, default=None, help="daemon config whose [dsp] table the analyzer uses (default: the shipped one)")
    p.add_argument("--reference", action="store_true",
                   help="also replay with the VT/VF evidence checks off (the previous detector) and print it beside")
    _outputs(p)
    p.set_defaults(func=_eval_stream)

    p = cli.subcommand("eval", "census", "stream records that have no rhythm annotations and count the alarms they raise, "
                                         "per record class (REFERENCE.csv) and per monitored hour")
    p.add_argument("folder", type=Path, help="WFDB records at any depth, with a CinC 2017 REFERENCE.csv (record,class) or "
                                             "without (one class); e.g. ../shared/ecg/cinc2017")
    p.add_argument("--block-s", type=float, default=1.0)
    p.add_argument("--jobs", type=int, default=1, help="records streamed in parallel (default 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N records (a quick look; not with --write)")
    p.add_argument("--config", type=Path, default=None, help="daemon config whose [dsp] table the analyzer uses (default: the shipped one)")
    _outputs(p)
    p.set_defaults(func=_eval_census)


def _outputs(p) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures (fractions) instead of the table")
    p.add_argument("--write", action="store_true", help="also write the figures to docs/results/<name>.json")


def _shown(path: Path) -> str:
    """A data folder as the docs name it (``../shared/ecg/<name>``), not this machine's path."""
    parts = Path(path).resolve().parts
    if "shared" in parts:
        return "../" + "/".join(parts[parts.index("shared"):])
    return str(path)


def _folder_name(folder: Path) -> str:
    """A data set's name for its result file: LUDB keeps its records in ``ludb/data``."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "data" else folder.name


def _command(args, name: str, flags: list[str]) -> str:
    return " ".join(["edge-ecg", "eval", name, _shown(args.folder), *flags])


def _emit(args, text: str, result: dict, name: str, command: str) -> None:
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(text)
    if args.write:
        from edge_ecg.results import write_result

        path = write_result(name, result, command=command)
        print(f"wrote {path.name}", file=sys.stderr)


def _daemon_config(path: Path | None):
    from edge_ecg.service.config import load_config

    if path is None:
        shipped = Path(__file__).resolve().parents[2] / "systemd" / "edge-ecg.toml"
        return load_config(shipped) if shipped.is_file() else None
    return load_config(path)


def _analyzer_config(daemon_cfg):
    from edge_ecg.dsp.config import AnalyzerConfig

    return AnalyzerConfig.from_dict(dict(daemon_cfg.dsp) if daemon_cfg is not None else {})


def _score_dict(s) -> dict:
    return {"se": round(s.se, 6), "ppv": round(s.ppv, 6), "tp": s.tp, "fn": s.fn, "fp": s.fp}


def _eval_qrs(args) -> int:
    from edge_ecg.eval.qrs_eval import evaluate_noise_stress, evaluate_qrs, format_noise_stress

    def progress(r):
        if not args.json:
            print(f"  {r.name}: done", file=sys.stderr, flush=True)

    report = evaluate_qrs(args.folder, block_s=args.block_s, with_xqrs=not args.no_xqrs, names=args.records, progress=progress,
                          annotator=args.annotator)
    result = qrs_result(report)
    text = report.format()
    if args.noise_stress:
        rows = evaluate_noise_stress(args.noise_stress, block_s=args.block_s, with_xqrs=not args.no_xqrs)
        result["noise_stress"] = noise_result(rows)
        text += "\n\n" + format_noise_stress(rows)
    flags = (["--no-xqrs"] if args.no_xqrs else []) + (["--records", *args.records] if args.records else [])
    flags += ["--annotator", args.annotator] if args.annotator != "atr" else []
    _emit(args, text, result, f"qrs-{_folder_name(args.folder)}", _command(args, "qrs", flags))
    return 0


def _gross_with_ci(report, which: str) -> dict:
    """Gross Se and +P with 95% intervals from resampling whole records."""
    from edge_ecg.eval.crossval import bootstrap_interval
    from edge_ecg.eval.qrs_eval import Score

    per = {r.name: getattr(r, which) for r in report.records if getattr(r, which) is not None}
    def pooled(pick) -> Score:
        total = Score()
        for n in pick:
            total += per[n]
        return total

    d = _score_dict(report.gross(which))
    for key in ("se", "ppv"):
        lo, hi = bootstrap_interval(list(per), lambda pick, k=key: getattr(pooled(pick), k))
        d[f"{key}_ci95"] = [round(lo, 6), round(hi, 6)]
    return d


def qrs_result(report) -> dict:
    out = {"gross": _gross_with_ci(report, "ours"), "raw": _gross_with_ci(report, "ours_raw"), "block_s": report.block_s,
           "beats": sum(r.n_ref for r in report.records), "max_delay_s": round(max((r.max_delay_s for r in report.records), default=0.0), 4),
           "records": {r.name: {"beats": r.n_ref, **{k: v for k, v in _score_dict(r.ours).items()},
                                **({"xqrs": _score_dict(r.xqrs)} if r.xqrs is not None else {})} for r in report.records}}
    if any(r.xqrs is not None for r in report.records):
        out["xqrs"] = {"gross": _gross_with_ci(report, "xqrs"), "raw": _gross_with_ci(report, "xqrs_raw")}
    if any(r.ventricular is not None for r in report.records):
        out["ventricular_beats"] = _gross_with_ci(report, "ventricular")  # EC57 VEB Se and +P of the morphology labels
    return out


def noise_result(rows) -> dict:
    out = {}
    for row in rows:
        name, db, s = row[:3]
        d = {"snr_db": db, **_score_dict(s)}
        if len(row) > 3:
            d["xqrs"] = _score_dict(row[3])
        out[name] = d
    return {"records": out}


def _eval_noise(args) -> int:
    from edge_ecg.eval.qrs_eval import evaluate_noise_stress, format_noise_stress

    rows = evaluate_noise_stress(args.folder, block_s=args.block_s, with_xqrs=not args.no_xqrs)
    _emit(args, format_noise_stress(rows), noise_result(rows), "noise-stress", _command(args, "noise-stress", ["--no-xqrs"] if args.no_xqrs else []))
    return 0


def _eval_alarms(args) -> int:
    from edge_ecg.dsp.types import RHYTHM_KINDS
    from edge_ecg.errors import InputError
    from edge_ecg.eval.alarm_eval import evaluate_alarms

    if args.kind not in RHYTHM_KINDS:
        raise InputError("--kind", f"unknown rhythm kind {args.kind!r} (known: {', '.join(RHYTHM_KINDS)})")
    if args.cv:
        return _eval_alarms_cv(args)
    daemon_cfg = _daemon_config(args.config)
    report = evaluate_alarms(args.folder, kind=args.kind, block_s=args.block_s, config=_analyzer_config(daemon_cfg),
                             lead_in_s=None if args.whole else args.lead_in_s, use_pulse=not args.no_pulse)
    tp, fn, fp, tn = report.counts()
    result = {"tp": tp, "fn": fn, "fp": fp, "tn": tn, "tpr": round(report.tpr, 4), "tnr": round(report.tnr, 4), "score": round(report.score, 4),
              "kind": args.kind, "alarms": len(report.results), "streamed": "whole records" if args.whole else f"{args.lead_in_s:g} s lead-in",
              "pulse": not args.no_pulse,
              "records": {r.name: {"truth": r.truth, "raised": r.raised, "onset_s": r.onset_s} for r in report.results}}
    text = report.format(per_record=not args.quiet)
    flags = (["--whole"] if args.whole else []) + (["--no-pulse"] if args.no_pulse else [])
    if args.bundle is not None:
        from edge_ecg.eval.triage_eval import TriageLimits, format_triage, triage_rows

        limits = TriageLimits.from_daemon_config(daemon_cfg) if daemon_cfg is not None else TriageLimits()
        tri = triage_rows(report, args.folder, args.bundle, limits, args.kind)
        result["triage"] = tri
        text += "\n\n" + format_triage(tri)
        flags += ["--bundle", _shown(args.bundle) if "shared" in str(args.bundle) else str(args.bundle)]
    _emit(args, text, result, f"alarms-{args.folder.name}" + ("-ecg-only" if args.no_pulse else ""), _command(args, "alarms", flags))
    return 0


def _eval_alarms_cv(args) -> int:
    from edge_ecg.errors import InputError
    from edge_ecg.eval.alarm_cv import CACHE_DIR, ROW_PULSE, collect, collect_streams, cross_validated, format_spread, seed_spread

    if args.seeds < 1:
        raise InputError("--seeds", f"must be at least 1, got {args.seeds}")

    def progress(name):
        if not args.json:
            print(f"  {name}: streamed", file=sys.stderr, flush=True)

    logs = collect(args.folder, block_s=args.block_s, progress=progress, jobs=args.jobs, cache=args.cache or CACHE_DIR)
    streams = None
    if args.streams is not None:
        streams = collect_streams(args.streams, block_s=args.block_s, progress=progress, jobs=args.jobs, cache=args.cache or CACHE_DIR)
    report = cross_validated(logs, k=args.folds, streams=streams)
    summary = report.summary()
    main = summary[ROW_PULSE]
    result = {k: main[k] for k in ("tp", "fn", "fp", "tn", "tpr", "tnr", "score")}
    result.update({"kind": "ventricular_tachycardia", "alarms": len(logs), "folds": args.folds, "rows": summary})
    text, flags = report.format(), ["--cv", "--folds", str(args.folds)]
    if streams is not None:
        result["streams"] = {"folder": _shown(args.streams), **(summary[ROW_PULSE].get("streams") or {})}
        flags += ["--streams", _shown(args.streams)]
    if args.seeds > 1:
        spread = seed_spread(logs, range(args.seeds), k=args.folds, reports={0: report}, streams=streams)
        result["seed_spread"] = spread
        text += "\n\n" + format_spread(spread)
        flags += ["--seeds", str(args.seeds)]
    _emit(args, text, result, f"alarms-{args.folder.name}-cv", _command(args, "alarms", flags))
    return 0


def _eval_stream(args) -> int:
    from edge_ecg.eval.stream_eval import evaluate_stream

    daemon_cfg = _daemon_config(args.config)

    def progress(name):
        if not args.json:
            print(f"  {name}: streamed", file=sys.stderr, flush=True)

    dsp = dict(daemon_cfg.dsp) if daemon_cfg is not None else {}
    report = evaluate_stream(args.folder, dsp, args.block_s, args.records, progress)
    result = report.to_json()
    result["folder"] = _shown(args.folder)
    text = report.format().replace(str(args.folder), _shown(args.folder))
    flags = ["--records", *args.records] if args.records else []
    if args.reference:
        prev = {**dsp, "evidence": {**dict(dsp.get("evidence", {})), "enabled": False}}
        ref = evaluate_stream(args.folder, prev, args.block_s, args.records, progress)
        result["previous_detector"] = {k: v for k, v in ref.to_json().items() if k in ("hours", "conditions", "false_alarms")}
        text += "\n\nprevious detector (beat rule alone, evidence checks off), same records:\n" + ref.format().split("\n", 1)[1]
        flags.append("--reference")
    _emit(args, text, result, f"stream-{args.folder.name}", _command(args, "stream", flags))
    return 0




def _eval_census(args) -> int:
    from edge_ecg.errors import InputError
    from edge_ecg.eval.census import census

    if args.write and args.limit:
        raise InputError("--limit", "a partial census is a quick look: it is not written to docs/results")
    daemon_cfg = _daemon_config(args.config)

    def progress(done, total):
        if not args.json and (done % 500 == 0 or done == total):
            print(f"  streamed {done}/{total}", file=sys.stderr, flush=True)

    report = census(args.folder, dict(daemon_cfg.dsp) if daemon_cfg is not None else {}, args.block_s, args.jobs, args.limit, progress)
    result = {**report.to_json(), "folder": _shown(args.folder)}
    text = report.format().replace(str(args.folder), _shown(args.folder))
    _emit(args, text, result, f"census-{_folder_name(args.folder)}", _command(args, "census", ["--jobs", str(args.jobs)] if args.jobs > 1 else []))
    return 0
