"""What the serial-source tests share: emptying a SerialSource after its cart process exited."""

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
