"""What the serial-source tests share: emptying a SerialSource after its cart stopped."""

from __future__ import annotations

import time

from edge_ecg.stream import SourceState


def drain_after_exit(src, deadline: float) -> list:
    """The blocks a SerialSource still holds once its cart has exited: wait until the reader has
    seen the link end (LOST or CLOSED), then read until nothing more comes."""
    while src.state not in (SourceState.LOST, SourceState.CLOSED) and time.monotonic() < deadline:
        time.sleep(0.05)
    blocks = []
    while (block := src.read(timeout=0.5)) is not None:
        blocks.append(block)
    return blocks


def read_while_running(src, cart_thread, timeout_s: float = 20.0) -> list:
    """Every block a SerialSource yields while an in-process cart thread runs, then what it still
    holds once the thread has ended."""
    blocks, end = [], time.monotonic() + timeout_s
    while cart_thread.is_alive() and time.monotonic() < end:
        block = src.read(timeout=0.05)
        if block is not None:
            blocks.append(block)
    while (block := src.read(timeout=0.3)) is not None:
        blocks.append(block)
    return blocks
