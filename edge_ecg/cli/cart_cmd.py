"""``edge-ecg cart-sim``: a simulated cart on a pty (its decoder benchmark is ``bench decode``, in bench_cmd)."""

from __future__ import annotations


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.command("cart-sim", "stream a record through the cart wire protocol on a pseudo-terminal (prints the device path)")
    p.add_argument("record", help="an ECG record in any format edge_ecg.records reads (e.g. a WFDB .hea)")
    p.add_argument("--speed", type=float, default=1.0, help="ADC clock speed-up (1 = real time)")
    p.add_argument("--faults", default="", help="comma-separated KIND@START[+DURATION][:PARAM], kinds: "
                   "drop, bitflip, garbage, stall, unplug, leadoff, jump (e.g. 'unplug@30+1.5,garbage@12:300,jump@40:86400')")
    p.add_argument("--link", help="keep a stable symlink to the current pty here (like /dev/serial/by-id)")
    p.add_argument("--frame-rows", type=int, default=None, help="rows per SAMPLES frame (default: 20 ms)")
    p.add_argument("--ring-s", type=float, default=2.0, help="device ring buffer in seconds of signal (default 2)")
    p.add_argument("--loop", action="store_true", help="start the record again at its end, forever")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    p.set_defaults(func=_cart_sim)


def _cart_sim(args) -> int:
    from firmware_bridge.cart_sim import FaultSpecError, run_cart_sim
    from edge_ecg.errors import InputError

    try:
        return run_cart_sim(args.record, speed=args.speed, faults=args.faults, link=args.link,
                            rows_per_frame=args.frame_rows, ring_s=args.ring_s, loop=args.loop, seed=args.seed)
    except FaultSpecError as exc:
        raise InputError("--faults", str(exc)) from None


