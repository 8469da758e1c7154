"""``edge-ecg doctor``: the unit's self-test (thin over ``edge_ecg.doctor``)."""

from __future__ import annotations

from pathlib import Path


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    from edge_ecg.paths import install_paths

    config = install_paths().config
    p = cli.command("doctor", "self-test of this unit: software, config, bundle signatures, TensorRT, cart port, disk, clock, "
                    "service, display, sound; pass/fail with the fix; exit 1 on any failure")
    p.add_argument("--config", type=Path, default=config, help=f"daemon config (default {config}, or $EDGE_ECG_CONFIG)")
    p.add_argument("--port-timeout", type=float, default=5.0, help="seconds to wait for the cart's HELLO and first samples")
    p.add_argument("--json", action="store_true", help="machine-readable findings for fleet tooling")
    p.set_defaults(func=_doctor)


def _doctor(args) -> int:
    from edge_ecg.doctor import findings_json, format_findings, run_doctor

    findings = run_doctor(args.config, port_timeout_s=args.port_timeout)
    print(findings_json(findings) if args.json else format_findings(findings), flush=True)
    return 1 if any(f.status == "fail" for f in findings) else 0
