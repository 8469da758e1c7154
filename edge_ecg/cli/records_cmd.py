"""Records and rendering commands: ``render``, ``records``, ``convert``."""

from __future__ import annotations


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.command("render", "render a record's windows as model images and clinician snapshots (PNG)")
    p.add_argument("record", help="an ECG file (WFDB .hea, EDF, HL7 aECG .xml, CSV)")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--layout", choices=("12lead", "strips"), help="default: 12lead when the record has the 12 leads, else strips")
    p.add_argument("--leads", nargs="+", help="leads of a strips layout (default: the record's first 3)")
    p.add_argument("--seconds", type=float, default=10.0, help="window length (default 10)")
    p.add_argument("--hop", type=float, help="seconds between window starts (default: the window length)")
    p.add_argument("--max-windows", type=int, default=6, help="stop after this many windows (default 6)")
    p.add_argument("--size", type=int, default=224, help="model image width and height in pixels (default 224)")
    p.add_argument("--grid", action="store_true", help="draw the paper grid on the model images")
    p.set_defaults(func=_render)

    p = cli.command("records", "list the ECG records found in files or folders (recursively) with rate, leads, length")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_records)

    p = cli.command("convert", "convert an ECG record to another format, chosen by the output's extension (.edf .xml .csv)")
    p.add_argument("record", help="any readable ECG file (WFDB, EDF, HL7 aECG, CSV, DICOM, SCP-ECG, MFER, ISHNE, "
                                  "Sierra/MUSE/Mortara XML)")
    p.add_argument("output")
    p.add_argument("--anonymize", action="store_true",
                   help="leave out the patient's name, id and birth date (kept by default where the format has a field)")
    p.set_defaults(func=_convert)


def _render(args) -> int:
    from edge_ecg.records import read_record
    from edge_ecg.render.to_files import default_spec, render_to_files

    record = read_record(args.record)
    overrides = {"seconds": args.seconds, "width": args.size, "height": args.size, "grid": args.grid}
    if args.layout:
        overrides["layout"] = args.layout
    if args.leads:
        overrides["leads"] = tuple(args.leads)
    spec = default_spec(record, **overrides)
    done = render_to_files(record, args.out, spec, hop_s=args.hop, max_windows=args.max_windows)
    print(f"{record.source}: {record.duration_s:.1f} s at {record.fs:g} Hz, leads {' '.join(record.leads)}")
    print(f"rendered {len(done)} window(s) of {spec.seconds:g} s, layout {spec.layout}, {spec.width}x{spec.height} model images, into {args.out}")
    for w in done:
        print(f"  window {w.index} from {w.start_s:.1f} s: {w.model_png.name}, {w.snapshot_png.name}")
    return 0 if done else 1


def _records(args) -> int:
    from edge_ecg.errors import RecordError
    from edge_ecg.records import find_records, read_record

    paths = find_records(args.paths)
    bad = 0
    for path in paths:
        try:
            r = read_record(path)
        except RecordError as exc:
            bad += 1
            print(f"{path}: ERROR {exc.problem}")
            continue
        print(f"{path}: {r.duration_s:.1f} s at {r.fs:g} Hz, {len(r.leads)} leads ({' '.join(r.leads)})")
    print(f"{len(paths)} record(s), {bad} unreadable")
    return 1 if bad else 0


def _convert(args) -> int:
    from edge_ecg.records import anonymize, identifiers, read_record, write_record

    record = read_record(args.record)
    had = sorted(identifiers(record))
    if args.anonymize:
        record = anonymize(record)
    out = write_record(record, args.output)
    kept = "" if not had else (" without patient identifiers" if args.anonymize else f" with patient {', '.join(had)}")
    print(f"wrote {out} ({record.duration_s:.1f} s, {len(record.leads)} leads){kept}")
    return 0


