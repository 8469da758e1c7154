"""``edge-ecg monitor-sim`` (a Philips IntelliVue MP90 replaying a real capture on a pty)."""

from __future__ import annotations


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.command("monitor-sim", "replay an IntelliVue Data Export capture as a monitor on a pseudo-terminal (prints the device path)")
    p.add_argument("capture", help="a *.data.txt capture, its prefix (1D-vt) or a scenario of ../shared/monitors/intellivue-mp90 "
                   "(nsr, nsr-spo2-85, nsr-no-pleth, vt, vf)")
    p.add_argument("--speed", type=float, default=1.0, help="capture time speed-up (1 = real time)")
    p.add_argument("--faults", default="", help="comma-separated KIND@START[+DURATION][:PARAM] in capture seconds, kinds: "
                   "drop, corrupt, garbage, cut, unplug (e.g. 'corrupt@20+10:0.2,cut@60+15,unplug@120+5')")
    p.add_argument("--link", help="keep a stable symlink to the current pty here (like /dev/serial/by-id)")
    p.add_argument("--assoc-timeout", type=float, default=10.0, help="abort the association after this many wall-clock seconds "
                   "without a client message (the guide's 10 s for a 1 s minimum poll period)")
    p.add_argument("--no-static", action="store_true", help="never answer the poll for the waves' static attributes "
                   "(a monitor that does not report its scale)")
    p.add_argument("--report", help="write what was sent (wave replies delivered / dropped / corrupted / not sent) as JSON here")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    p.set_defaults(func=_monitor_sim)

    e = cli.subcommand("eval", "intellivue", "the IntelliVue captures through monitor-sim and the daemon: our alarm times beside the monitor's own")
    e.add_argument("captures", nargs="*", default=["nsr", "nsr-spo2-85", "nsr-no-pleth", "vt", "vf"],
                   help="captures (paths, prefixes or scenarios; default: all five)")
    e.add_argument("--speed", type=float, default=20.0, help="replay speed-up (protocol timers stay on the wall clock)")
    e.add_argument("--work", default=".cache/eval-intellivue", help="where the event logs of the runs are kept")
    e.add_argument("--no-write", action="store_true", help="print the table only; do not write docs/results/intellivue_alarms.json")
    e.set_defaults(func=_eval)


def _monitor_sim(args) -> int:
    from edge_ecg.errors import InputError
    from firmware_bridge.intellivue.monitor_sim import FaultSpecError, run_monitor_sim

    if args.speed <= 0:
        raise InputError("--speed", f"must be positive, got {args.speed}")
    try:
        return run_monitor_sim(args.capture, speed=args.speed, faults=args.faults, link=args.link, seed=args.seed,
                               assoc_timeout_s=args.assoc_timeout, answer_static=not args.no_static, report=args.report)
    except FaultSpecError as exc:
        raise InputError("--faults", str(exc)) from None


def _eval(args) -> int:
    import shutil
    from pathlib import Path

    from edge_ecg.eval.monitor_eval import decode_table, evaluate, table
    from edge_ecg.results import write_result

    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    res = evaluate(args.captures, work, speed=args.speed)
    print(decode_table(res["decode"]))
    print()
    print(table(res["rows"]))
    if not args.no_write:
        print(f"wrote {write_result('intellivue_alarms', res)}")
    return 0
