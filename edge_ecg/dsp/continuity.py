"""Does a rhythm go on through a suspected run? Shared by the pulse and the per-lead ECG tests.

Ventricular tachycardia replaces the rhythm before it. Artifact only hides it: underneath, the
patient's own beats (in a lead the artifact spares) and pulses (in the pleth or arterial line) keep
coming at the old rate with the old size. ``continuity`` measures that: from the last event before
the run, walk the events found since, count those that keep the rhythm's period before the run
(0.75-1.25 of it after the previous event, 0.75-1.5 for a lead's normal beats; a longer pause
counts the events it lacks as missed)
with at least half the size they had before, and subtract those that come too early (a fast
rhythm showing through, as VT beats matching a template would). The result over the events due
by now is 1 when the old rhythm went on unchanged and 0 when it was lost or replaced. The
fractions are physiology (beat-to-beat variation of a sinus rhythm, the stroke volume lost when
VT starts), not fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EARLY = 0.25  # an event is on time from this fraction of the period early (earlier: a faster rhythm) ...
LATE = 0.25  # ... to this fraction late, by default (``walk``'s ``late``)
_MIN_SIZE = 0.5  # an event smaller than this share of the size before does not count


@dataclass(frozen=True)
class Walk:
    """What ``walk`` counted: events that kept the old rhythm, came too early, and were due."""

    good: int
    early: int
    due: int

    def share(self, min_expected: int = 2) -> float | None:
        """``continuity``'s value: None while fewer than ``min_expected`` events were due."""
        if self.due < min_expected:
            return None
        return float(min(max(self.good - self.early, 0) / self.due, 1.0))


def walk(times: np.ndarray, sizes: np.ndarray, anchor: float, now: float, period: float, size_ref: float,
         settle: float = 0.0, late: float = LATE) -> Walk | None:
    """The walk behind ``continuity`` (same arguments), with its counts: how many events were due
    matters as much as the share that came (two pulses on time are weaker evidence than eight).
    None for a rhythm with no period or size."""
    if period <= 0 or size_ref <= 0:
        return None
    lo, hi = (1.0 - _EARLY) * period, (1.0 + late) * period
    good = early = missed = 0
    prev = anchor
    for t, s in zip(times, sizes):
        if t <= anchor or t > now - settle:  # too recent to judge its size yet
            continue
        dt = t - prev
        if dt < lo:
            early += 1  # too soon for the old rhythm
            continue
        if dt > hi:
            missed += max(int(round(dt / period)) - 1, 1)  # late: the events the gap should have held
        elif s >= _MIN_SIZE * size_ref:
            good += 1
        else:
            missed += 1  # on time but weak: the stroke volume is lost
        prev = t
    tail = now - settle - prev
    if tail > hi:
        missed += int(np.floor(tail / period - late))
    return Walk(good, early, good + missed)


def continuity(times: np.ndarray, sizes: np.ndarray, anchor: float, now: float, period: float, size_ref: float,
               min_expected: int = 2, settle: float = 0.0, late: float = LATE) -> float | None:
    """Share of the events due in (``anchor``, ``now``] that came on time and strong enough.

    ``times`` (seconds, sorted) and ``sizes`` are the events after ``anchor``; ``period`` and
    ``size_ref`` describe the rhythm before. An event is on time 0.75 to ``1 + late`` periods
    after the previous one (earlier is a faster rhythm showing through, later counts the events
    the gap should have held as missed), and each event re-anchors the walk, so a rhythm that drifts
    slowly stays on time; the tail counts up to ``now`` less ``settle`` (an event is recognised
    only that long after it happened: a pulse once it has fallen again). None while fewer than
    ``min_expected`` events were due (one event is no rhythm: no evidence either way yet).
    """
    w = walk(times, sizes, anchor, now, period, size_ref, settle, late)
    return None if w is None else w.share(min_expected)
