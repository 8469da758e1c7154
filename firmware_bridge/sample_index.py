"""The cart's running sample index as a stream position: 32-bit unwrap, bounded re-base, gap reasons.

Why one class: the wire decoder (counting samples that never arrived) and the serial source
(placing blocks in the stream) must agree on every frame, and the rules are easy to get subtly
wrong in two places. Pure: no clock, no I/O, no threads. The caller passes the wall-clock time
of the read a frame came in (``now_s``) when it has one, so tests drive it with numbers.

The rules, frame by frame, with ``ahead`` = the frame's index minus the index expected next,
taken modulo 2**32 (the counter wraps after 2**32 conversions):

- ``ahead == 0``: contiguous.
- ``0 < ahead <= plausible``: frames were lost on the way (``MISSING``), a gap of ``ahead``.
  ``plausible`` is the larger of ``max_gap_s`` of samples and the wall time since the last
  frame (plus ``slack_s``) in samples: a cart that was unplugged for an hour comes back an hour
  further on, but a frame 20 ms after the last one cannot be a day ahead.
- anything else is an anomaly: an implausible jump forward (``JUMP``), the index going back
  without a new session (``BACKWARDS``), or a new session announced by HELLO (``RESTART``). The
  frame is **re-based**: placed right after the last one, plus the samples the wall clock says
  were missed (never more; for a jump or a backward step only when the link was quiet for more
  than ``slack_s``, since a glitch arrives amid the stream). So the stream index keeps
  increasing and never leaps.
- after a ``JUMP``/``BACKWARDS`` re-base the old sequence is remembered: if the next frame
  continues it (the anomaly was one bad index, e.g. a firmware fault with a valid CRC), the old
  base is restored (``RESUMED``) and every later frame lands where it belongs. A frame that
  continues the new base instead confirms it.

No frame is ever discarded: every placement starts at or after the end of the one before.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

WRAP = 1 << 32
_HALF = WRAP // 2
# Without a sampling rate (a decoder that has not seen HELLO) the plausible gap is a fixed count:
# 2**20 samples is 35 min at 500 Hz, far beyond any loss a connected link produces.
DEFAULT_MAX_GAP_SAMPLES = 1 << 20


class GapReason(str, enum.Enum):
    """Why a frame does not start where the last one ended."""

    CONTIGUOUS = "contiguous"
    MISSING = "missing"  # frames lost on the way: the gap is exact
    JUMP = "jump"  # implausible jump forward: rejected, re-based
    BACKWARDS = "backwards"  # the index went back without a new session: re-based
    RESTART = "restart"  # a new session (the cart rebooted): re-based
    RESUMED = "resumed"  # the sequence from before a rejected jump continues: old base restored

    @property
    def rebased(self) -> bool:
        return self in (GapReason.JUMP, GapReason.BACKWARDS, GapReason.RESTART)


_CONTIGUOUS = GapReason.CONTIGUOUS
_ANOMALIES = frozenset((GapReason.JUMP, GapReason.BACKWARDS, GapReason.RESTART, GapReason.RESUMED))


class Placement(NamedTuple):
    """Where one frame goes: ``start`` in the stream, ``gap`` samples after the previous frame's end.

    A named tuple, not a dataclass: one is made per frame on the reader's hot path."""

    start: int
    gap: int
    reason: GapReason
    device_index: int  # the frame's own 32-bit index
    device_ahead: int  # signed distance from the index expected next (for the log): +86400000 for a day's jump

    @property
    def anomaly(self) -> bool:
        return self.reason in _ANOMALIES


class SampleIndexTracker:
    """Places SAMPLES frames in one increasing stream index; see the module docstring for the rules.

    ``fs`` (Hz, may be set later with ``set_rate``) turns seconds into samples; without it the
    plausible gap is ``DEFAULT_MAX_GAP_SAMPLES`` and re-bases add no estimated gap.
    """

    def __init__(self, fs: float | None = None, *, max_gap_s: float = 600.0, slack_s: float = 2.0) -> None:
        if max_gap_s <= 0 or slack_s < 0:
            raise ValueError("max_gap_s must be > 0 and slack_s >= 0")
        self.fs = float(fs) if fs else None
        self.max_gap_s = float(max_gap_s)
        self.slack_s = float(slack_s)
        self._dev_next: int | None = None  # 32-bit index expected next
        self._offset = 0  # stream index = unwrapped device index + offset
        self._unwrapped_next = 0  # unwrapped device index expected next
        self._stream_next: int | None = None  # stream index after the last placed row
        self._last_now: float | None = None
        self._restart = False
        self._prior: tuple[int, int, int] | None = None  # (dev_next, unwrapped_next, offset) before a re-base

    # -- inputs -------------------------------------------------------------------------
    def set_rate(self, fs: float) -> None:
        self.fs = float(fs) if fs and fs > 0 else None

    def restart(self) -> None:
        """The cart announced a new session (it rebooted): the next frame is re-based."""
        self._restart = True
        self._prior = None

    @property
    def stream_next(self) -> int | None:
        """Stream index after the last placed row (None before the first frame)."""
        return self._stream_next

    def plausible_gap(self, elapsed_s: float | None) -> int:
        """The largest forward gap (samples) accepted as frames lost, given the wall time elapsed."""
        if self.fs is None:
            return DEFAULT_MAX_GAP_SAMPLES
        bound = self.max_gap_s
        if elapsed_s is not None and elapsed_s > 0:
            bound = max(bound, elapsed_s + self.slack_s)
        return int(bound * self.fs)

    def place(self, index: int, n_rows: int, now_s: float | None = None) -> Placement:
        """Place a frame whose first row has the 32-bit ``index`` and which holds ``n_rows`` rows."""
        if index == self._dev_next and not self._restart:  # the common case: the next frame, in order
            if now_s is not None:
                self._last_now = now_s
            self._prior = None
            start = self._unwrapped_next + self._offset
            self._unwrapped_next += n_rows
            self._dev_next = (index + n_rows) & 0xFFFFFFFF
            self._stream_next = start + n_rows
            return Placement(start, 0, _CONTIGUOUS, index, 0)
        index = int(index) % WRAP
        elapsed = None if (now_s is None or self._last_now is None) else max(0.0, now_s - self._last_now)
        if now_s is not None:
            self._last_now = now_s
        if self._dev_next is None:  # the very first frame defines the stream's origin
            return self._commit(index, index, 0, n_rows, GapReason.CONTIGUOUS, 0, 0)
        ahead = (index - self._dev_next) % WRAP
        signed = ahead - WRAP if ahead >= _HALF else ahead
        limit = self.plausible_gap(elapsed)
        if not self._restart:
            if ahead <= limit:
                self._prior = None  # the current base holds: confirmed
                return self._continue(index, ahead, n_rows, signed)
            if self._prior is not None:
                p_next, p_unwrapped, p_offset = self._prior
                p_ahead = (index - p_next) % WRAP
                if p_ahead <= limit:  # the old sequence goes on: the re-base was one bad index
                    self._prior = None
                    start = p_unwrapped + p_ahead + p_offset
                    offset = p_offset + max(0, self._stream_next - start)  # never overlap what was placed
                    start = p_unwrapped + p_ahead + offset
                    return self._commit(index, p_unwrapped + p_ahead, offset, n_rows, GapReason.RESUMED, start - self._stream_next, signed)
        reason = GapReason.RESTART if self._restart else (GapReason.BACKWARDS if ahead >= _HALF else GapReason.JUMP)
        if reason is not GapReason.RESTART:
            self._prior = (self._dev_next, self._unwrapped_next, self._offset)
        self._restart = False
        quiet = reason is GapReason.RESTART or (elapsed is not None and elapsed > self.slack_s)
        gap = self._estimated_gap(elapsed, n_rows) if quiet else 0
        unwrapped = self._unwrapped_next + ahead if reason is GapReason.JUMP else index
        offset = self._stream_next + gap - unwrapped
        return self._commit(index, unwrapped, offset, n_rows, reason, gap, signed)

    # -- internals ----------------------------------------------------------------------
    def _continue(self, index: int, ahead: int, n_rows: int, signed: int) -> Placement:
        unwrapped = self._unwrapped_next + ahead
        reason = GapReason.MISSING if ahead else GapReason.CONTIGUOUS
        return self._commit(index, unwrapped, self._offset, n_rows, reason, ahead, signed)

    def _estimated_gap(self, elapsed_s: float | None, n_rows: int) -> int:
        """Samples the wall clock says were missed before a re-based frame (0 without a clock)."""
        if elapsed_s is None or self.fs is None:
            return 0
        return max(0, int(round(elapsed_s * self.fs)) - n_rows)

    def _commit(self, index: int, unwrapped: int, offset: int, n_rows: int, reason: GapReason, gap: int, signed: int) -> Placement:
        self._offset = offset
        self._unwrapped_next = unwrapped + n_rows
        self._dev_next = (index + n_rows) % WRAP
        start = unwrapped + offset
        self._stream_next = start + n_rows
        return Placement(start=start, gap=gap, reason=reason, device_index=index, device_ahead=signed)
