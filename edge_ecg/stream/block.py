"""``SampleBlock``: the unit every source yields and the DSP chain, ring buffers and alarms take."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class SourceState(str, enum.Enum):
    """What a source reports for technical alarms (signal lost, stalled)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"  # handshake done, no samples yet
    STREAMING = "streaming"
    STALLED = "stalled"  # connected but no samples for longer than the stall limit
    LOST = "lost"  # device gone or unreadable; reconnecting with backoff
    CLOSED = "closed"


@dataclass(frozen=True)
class AuxChannel:
    """A non-ECG waveform that travels beside the leads at its own rate: a pulse (``PLETH``, ``ABP``).

    ``start`` is the channel's own running sample index, aligned with the ECG so that
    ``start / fs`` is the same stream time as the block's ``start / fs`` of the leads (a source that
    sends pleth at 125 Hz beside ECG at 500 Hz yields a quarter as many pleth samples per block).
    ``samples`` are float32 in the channel's native unit (``unit``: "NU" for pleth, "mmHg" for
    ABP); NaN marks samples that never arrived. The DSP uses a pulse as evidence (a normal pulse
    that continues through a "VT" is artifact), never as an ECG lead.
    """

    name: str  # canonical: "PLETH" or "ABP"
    fs: float
    start: int
    samples: np.ndarray  # float32 (n,)
    unit: str = "NU"

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    @property
    def stop(self) -> int:
        return self.start + self.n


@dataclass(frozen=True)
class SampleBlock:
    """Consecutive samples of all leads, placed in the stream by their running sample index.

    ``start`` is the sample index of the first row; indices are the cart's own count, so a lost
    span shows up as ``gap_before`` (samples that never arrived between the previous block and
    this one) rather than as shifted time. ``lead_off`` is per sample and lead (True = electrode
    off, samples not trustworthy); ``pacer`` lists row offsets where the cart flagged a pacing
    spike.
    """

    start: int
    samples: np.ndarray  # float32 (n, n_leads), microvolts
    fs: float
    leads: tuple[str, ...]
    lead_off: np.ndarray | None = None  # bool (n, n_leads); None = all on
    pacer: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    gap_before: int = 0
    aux: tuple[AuxChannel, ...] = ()  # pulse channels at their own rates, when the source has them
    gap_reason: str = ""  # why gap_before (or a re-based index) happened: "missing", "jump", "restart", "queue_overrun", ...

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    @property
    def stop(self) -> int:
        """Index one past the last sample."""
        return self.start + self.n

    def lead_off_any(self) -> np.ndarray:
        """Per lead: was the electrode off at any sample of this block."""
        if self.lead_off is None:
            return np.zeros(len(self.leads), dtype=bool)
        return self.lead_off.any(axis=0)
