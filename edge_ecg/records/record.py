"""The one value every reader returns and every consumer takes: ``Record``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edge_ecg.errors import RecordError


@dataclass(frozen=True)
class Record:
    """An ECG as the appliance sees it, whatever file or wire it came from.

    ``signals`` is float32, shape (n_samples, n_leads), in microvolts; NaN marks samples that
    were not recorded (gaps). ``leads`` are canonical names (see ``edge_ecg.records.leads``).
    """

    signals: np.ndarray
    fs: float
    leads: tuple[str, ...]
    name: str = ""
    source: str = ""
    start_time: dt.datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.name or "<record>"
        sig = np.asarray(self.signals)
        if sig.ndim != 2:
            raise RecordError(where, f"signals must be 2-D (samples, leads), got shape {sig.shape}")
        if sig.dtype != np.float32:
            sig = sig.astype(np.float32)
        object.__setattr__(self, "signals", sig)
        object.__setattr__(self, "leads", tuple(self.leads))
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise RecordError(where, f"sampling rate must be a positive number, got {self.fs!r}")
        if sig.shape[1] != len(self.leads):
            raise RecordError(
                where, f"{sig.shape[1]} signal columns but {len(self.leads)} lead names {self.leads}"
            )
        if len(set(self.leads)) != len(self.leads):
            dup = sorted({n for n in self.leads if self.leads.count(n) > 1})
            raise RecordError(where, f"lead name collision: {', '.join(dup)} appear more than once")

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name: str) -> np.ndarray:
        """One lead's samples by canonical name."""
        try:
            return self.signals[:, self.leads.index(name)]
        except ValueError:
            raise RecordError(self.source or self.name, f"no lead {name!r} (has {', '.join(self.leads)})") from None

    def select(self, leads: Sequence[str]) -> "Record":
        """The record restricted (and reordered) to ``leads``; missing leads are an error."""
        cols = []
        for name in leads:
            if name not in self.leads:
                raise RecordError(self.source or self.name, f"missing lead {name!r} (has {', '.join(self.leads)})")
            cols.append(self.leads.index(name))
        return dataclasses.replace(self, signals=self.signals[:, cols], leads=tuple(leads))

    def slice(self, start: int, stop: int) -> "Record":
        """Samples [start, stop) as a record whose start time moves with it."""
        start_time = self.start_time + dt.timedelta(seconds=start / self.fs) if self.start_time and start > 0 else self.start_time
        return dataclasses.replace(self, signals=self.signals[start:stop], start_time=start_time)
