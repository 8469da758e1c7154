"""A fixed-size ring buffer of samples addressed by the stream's own sample index.

Why hand-written: windows are cut by absolute sample index (a gap must stay a gap, not shift
time), which ``collections.deque`` of blocks cannot do without copying; a preallocated array
with ``index % capacity`` keeps memory flat for hours. Samples never written (gaps) read as NaN,
and lead-off flags are kept beside the samples.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.stream.block import SampleBlock


class SampleRing:
    """The last ``capacity`` samples of ``n_leads`` leads, indexed by absolute sample index."""

    def __init__(self, capacity: int, n_leads: int) -> None:
        if capacity <= 0 or n_leads <= 0:
            raise ValueError(f"ring needs capacity > 0 and leads > 0, got {capacity}, {n_leads}")
        self.capacity = int(capacity)
        self.n_leads = int(n_leads)
        self._data = np.full((self.capacity, self.n_leads), np.nan, dtype=np.float32)
        self._off = np.zeros((self.capacity, self.n_leads), dtype=bool)
        self._stop = 0  # one past the newest index written
        self._start = 0  # oldest index still held

    @property
    def stop(self) -> int:
        return self._stop

    @property
    def start(self) -> int:
        return self._start

    def write(self, block: SampleBlock) -> None:
        """Store a block at its sample index; a jump forward leaves NaN (a gap) in between."""
        if block.samples.shape[1] != self.n_leads:
            raise ValueError(f"block has {block.samples.shape[1]} leads, ring holds {self.n_leads}")
        if block.start > self._stop:
            self._fill(self._stop, block.start, np.nan, False)
        samples, off, start = block.samples, block.lead_off, block.start
        if block.n > self.capacity:  # only the newest capacity samples can be held
            cut = block.n - self.capacity
            samples, start = samples[cut:], start + cut
            off = off[cut:] if off is not None else None
        n = samples.shape[0]
        pos = np.arange(start, start + n) % self.capacity
        self._data[pos] = samples
        self._off[pos] = off if off is not None else False
        self._stop = max(self._stop, start + n)
        self._start = max(self._start, self._stop - self.capacity)

    def _fill(self, a: int, b: int, value: float, off: bool) -> None:
        a = max(a, b - self.capacity)
        pos = np.arange(a, b) % self.capacity
        self._data[pos] = value
        self._off[pos] = off

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of samples and lead-off flags for [start, stop); indices not held (gaps) read as NaN, not off."""
        n = max(0, stop - start)
        data = np.full((n, self.n_leads), np.nan, dtype=np.float32)
        off = np.zeros((n, self.n_leads), dtype=bool)
        a, b = max(start, self._start), min(stop, self._stop)
        if b > a:
            pos = np.arange(a, b) % self.capacity
            data[a - start : b - start] = self._data[pos]
            off[a - start : b - start] = self._off[pos]
        return data, off
