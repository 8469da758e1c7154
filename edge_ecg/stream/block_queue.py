"""``BlockQueue``: the bounded hand-over from a source's reader thread to its consumer.

The reader never waits: when the consumer has fallen ``maxsize`` blocks behind, the oldest block
goes (counted in ``overruns``). The consumer's ``get(timeout)`` never waits longer than asked, and
every block it returns carries ``gap_before``: the samples between the previous block it handed
out and this one (lost on the wire, or dropped here), so no loss is ever seen as shifted time,
with ``gap_reason`` saying which (the source's own reason, ``queue_overrun``, or both).
A block that overlaps what was already handed out (a reply received twice) is trimmed, its aux
channels with it, or dropped when nothing new is left.
"""

from __future__ import annotations

import dataclasses
import queue

from edge_ecg.stream.block import AuxChannel, SampleBlock


class BlockQueue:
    def __init__(self, maxsize: int = 4096) -> None:
        self._queue: queue.Queue[SampleBlock] = queue.Queue(maxsize=maxsize)
        self._origin: int | None = None  # start of the first block ever put (reader side)
        self._next: int | None = None  # index after the last block handed out (consumer side)
        self.overruns = 0
        self.samples_missing = 0  # sum of gap_before handed out

    def put(self, block: SampleBlock) -> None:
        """From the reader thread; never blocks."""
        if self._origin is None:
            self._origin = block.start
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            try:
                self._queue.get_nowait()  # drop the oldest: the consumer will see a gap
                self.overruns += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(block)

    def empty(self) -> bool:
        return self._queue.empty()

    def get(self, timeout: float | None = None) -> SampleBlock | None:
        """The next block with ``gap_before`` set, or ``None`` if none came within ``timeout``."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                block = self._queue.get(timeout=remaining) if remaining != 0.0 else self._queue.get_nowait()
            except queue.Empty:
                return None
            block = self._place(block)
            if block is not None:
                return block

    def _place(self, block: SampleBlock) -> SampleBlock | None:
        nxt = self._next if self._next is not None else self._origin
        if nxt is not None and block.start < nxt:
            skip = nxt - block.start
            if skip >= block.n:
                return None
            block = trim(block, skip)
        gap = 0 if nxt is None else block.start - nxt
        if gap:
            # the source's own reason when the whole gap is one it saw; blocks dropped here add theirs
            reason = block.gap_reason if block.gap_before == gap and block.gap_reason else (
                f"{block.gap_reason}+queue_overrun" if block.gap_reason else "queue_overrun")
            block = dataclasses.replace(block, gap_before=gap, gap_reason=reason)
            self.samples_missing += gap
        elif block.gap_before:
            block = dataclasses.replace(block, gap_before=0, gap_reason="")
        self._next = block.stop
        return block


def trim(block: SampleBlock, skip: int) -> SampleBlock:
    """``block`` without its first ``skip`` rows (and the aux samples of that span)."""
    aux = []
    for a in block.aux:
        cut = int(round(skip * a.fs / block.fs))
        aux.append(AuxChannel(a.name, a.fs, a.start + cut, a.samples[cut:], a.unit))
    return dataclasses.replace(
        block, start=block.start + skip, samples=block.samples[skip:],
        lead_off=None if block.lead_off is None else block.lead_off[skip:],
        pacer=block.pacer[block.pacer >= skip] - skip, aux=tuple(aux),
    )
