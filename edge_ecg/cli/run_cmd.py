"""``edge-ecg run`` and ``edge-ecg alarms status|ack|pause|relearn``: thin over ``edge_ecg.service``."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_SOCKET = os.environ.get("EDGE_ECG_CONTROL_SOCKET", "/run/edge-ecg/control.sock")


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.command("run", "run the bedside daemon: stream -> DSP -> windows -> inference -> alarms")
    p.add_argument("--config", required=True, type=Path, help="TOML config (see systemd/edge-ecg.toml)")
    p.add_argument("--check", action="store_true", help="validate the config, load the bundles, and exit")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of stream time")
    p.set_defaults(func=_run)

    for name, help in (
        ("status", "show active and latched alarms and the audio state"),
        ("ack", "acknowledge one alarm (or all): silence it; resets latched alarms"),
        ("pause", "pause alarm audio for a bounded time (default and max: the config's audio_pause_s)"),
        ("relearn", "the rhythm now is this patient's own: learn the dominant beat anew (never during VT)"),
    ):
        p = cli.subcommand("alarms", name, help)
        p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"control socket (default {DEFAULT_SOCKET}, or $EDGE_ECG_CONTROL_SOCKET)")
        p.add_argument("--json", action="store_true", help="print the raw JSON reply")
        if name == "ack":
            p.add_argument("alarm", nargs="?", default=None, help="alarm name (default: all)")
        if name == "pause":
            p.add_argument("--seconds", type=float, default=None)
        p.set_defaults(func=_alarms, alarms_cmd=name)


def _run(args) -> int:
    from edge_ecg.service.config import load_config
    from edge_ecg.service.daemon import check_config, run_daemon

    cfg = load_config(args.config)
    if args.check:
        for line in check_config(cfg):
            print(line)
        return 0
    return run_daemon(cfg, duration_s=args.duration)


def _alarms(args) -> int:
    from edge_ecg.alarms.control import request

    req: dict = {"cmd": args.alarms_cmd}
    if args.alarms_cmd == "ack" and args.alarm:
        req["alarm"] = args.alarm
    if args.alarms_cmd == "pause" and args.seconds is not None:
        import math

        from edge_ecg.errors import InputError

        if not math.isfinite(args.seconds) or args.seconds <= 0:
            raise InputError("--seconds", f"must be a finite number of seconds > 0, got {args.seconds}")
        req["seconds"] = args.seconds
    reply = request(args.socket, req)
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    if args.alarms_cmd == "status":
        print(f"t={reply['t']:.1f}s audio={reply['audio']}" + (f" paused_until={reply['paused_until']}" if reply.get("paused_until") else ""))
        for a in reply["alarms"]:
            flags = ",".join(f for f in ("active", "latched", "acknowledged", "restored") if a.get(f))
            print(f"  {a['priority']:<6} {a['category']:<13} {a['alarm']:<28} {flags} since t={a['onset_t']:.1f}s")
        if not reply["alarms"]:
            print("  no alarms")
        if "pipeline" in reply:
            print("  pipeline: " + " ".join(f"{k}={v}" for k, v in reply["pipeline"].items()))
    elif args.alarms_cmd == "relearn":
        print(reply["relearn"])
    else:
        for e in reply.get("events", []):
            print(f"{e['kind']} {e.get('alarm') or ''}".rstrip())
        if reply.get("note"):
            print(reply["note"])
        print(f"audio={reply['audio']}")
    return 0


