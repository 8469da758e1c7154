"""Subcommands of this area (being written)."""

from __future__ import annotations


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
