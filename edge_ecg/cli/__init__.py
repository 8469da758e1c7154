"""The ``edge-ecg`` command: a thin layer over library functions, one module per area.

Each module in ``_MODULES`` has ``register(cli: CommandLine)`` and adds its subcommands; every
subcommand sets ``func(args) -> int``. Modules import their heavy dependencies (torch,
onnxruntime, wfdb) inside ``func`` so ``edge-ecg --help`` stays instant and the appliance never
imports torch unless a factory command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from edge_ecg import __version__
from edge_ecg.errors import EdgeEcgError

_MODULES = (
    "edge_ecg.cli.records_cmd",
    "edge_ecg.cli.cart_cmd",
    "edge_ecg.cli.monitor_cmd",
    "edge_ecg.cli.dsp_cmd",
    "edge_ecg.cli.af_cmd",
    "edge_ecg.cli.export_cmd",
    "edge_ecg.cli.engine_cmd",
    "edge_ecg.cli.bench_cmd",
    "edge_ecg.cli.train_cmd",
    "edge_ecg.cli.run_cmd",
    "edge_ecg.cli.screen_cmd",
    "edge_ecg.cli.sound_cmd",
    "edge_ecg.cli.bundle_cmd",
    "edge_ecg.cli.doctor_cmd",
)

_GROUP_HELP = {
    "bench": "benchmarks that print medians and ratios measured side by side",
    "eval": "evaluate detectors and models on real annotated data",
    "export": "factory: PyTorch checkpoint -> ONNX -> INT8 QDQ ONNX -> bundle",
    "engine": "device: build and verify the TensorRT engine of a bundle",
    "train": "factory: masked-image pretraining, fine-tuning, demo bundles",
    "alarms": "talk to a running daemon's alarm manager over its control socket",
    "sound": "the IEC 60601-1-8 alarm bursts: write, play on ALSA, measure",
    "bundle": "signed bundles: sign and pack (factory); install, roll back, list (unit)",
}


class _VersionAction(argparse.Action):
    """``--version``: package and build id, runtimes, and the configured bundles with their engines
    (``$EDGE_ECG_CONFIG`` or the installed config), computed only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from edge_ecg.buildinfo import version_report

        print("\n".join(version_report()))
        parser.exit()


class CommandLine:
    """The parser under construction; modules add commands and share groups (``bench``, ``eval``)."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(
            prog="edge-ecg",
            description="Offline bedside ECG appliance: HeartBEiT on ECG images, INT8 on Jetson, local alarms.",
        )
        self.parser.add_argument("--version", action=_VersionAction, help=f"show package (edge-ecg {__version__}), build, bundle and engine versions and exit")
        self.parser.add_argument("-v", "--verbose", action="count", default=0, help="debug log output")
        self.top = self.parser.add_subparsers(dest="command", metavar="COMMAND")
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def command(self, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
        """A top-level subcommand."""
        return self.top.add_parser(name, help=help, description=help, **kwargs)

    def group(self, name: str) -> argparse._SubParsersAction:
        """The subparsers of a command group, created on first use."""
        if name not in self._groups:
            help = _GROUP_HELP.get(name, name)
            p = self.top.add_parser(name, help=help, description=help)
            self._groups[name] = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)
        return self._groups[name]

    def subcommand(self, group: str, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
        return self.group(group).add_parser(name, help=help, description=help, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    cli = CommandLine()
    for module in _MODULES:
        importlib.import_module(module).register(cli)
    return cli.parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeEcgError as exc:
        print(f"edge-ecg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
