"""Windows cut from records: where they are, what they are labelled, which patient they belong to.

A ``WindowSet`` is only references (record path, sample range, group) plus a label matrix; the
pixels come from ``export.datasets.cache.rendered`` which renders each window once through
``edge_ecg.render`` with the bundle's ``RenderSpec`` and keeps the result on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records import Record, read_record
from edge_ecg.records.lead_select import select_leads  # the appliance's own, so serving matches training


@dataclass(frozen=True)
class WindowRef:
    """One window: samples [start, stop) of a record; ``group`` is the patient/record it belongs to."""

    path: str
    start: int
    stop: int
    group: str
    source: str = ""  # which labeller made it (e.g. "cinc2015-vt", "mitdb-ds1"), for mixing sources


@dataclass
class WindowSet:
    """Windows and their multi-label targets (``labels`` is float32 (N, K), NaN = unknown)."""

    refs: list[WindowRef]
    labels: np.ndarray
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.float32).reshape(len(self.refs), len(self.label_names))

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def groups(self) -> np.ndarray:
        return np.asarray([r.group for r in self.refs])

    @property
    def sources(self) -> np.ndarray:
        return np.asarray([r.source for r in self.refs])

    def subset(self, idx: Sequence[int] | np.ndarray) -> "WindowSet":
        idx = np.asarray(idx, dtype=np.int64)
        return WindowSet([self.refs[i] for i in idx], self.labels[idx], self.label_names)

    @staticmethod
    def concat(sets: Sequence["WindowSet"]) -> "WindowSet":
        names = sets[0].label_names
        for s in sets[1:]:
            if s.label_names != names:
                raise ValueError(f"cannot concatenate window sets with labels {names} and {s.label_names}")
        refs = [r for s in sets for r in s.refs]
        labels = np.concatenate([s.labels for s in sets]) if sets else np.zeros((0, len(names)))
        return WindowSet(refs, labels, names)

    def summary(self) -> dict:
        """Counts a README or bundle.toml can show: windows, groups, positives per label."""
        return {
            "windows": len(self),
            "records": int(len(np.unique(self.groups))),
            "positives": {n: int(np.nansum(self.labels[:, j])) for j, n in enumerate(self.label_names)},
        }


def read_window(ref: WindowRef, leads: Sequence[str], record: Record | None = None) -> Record:
    """The ECG of one window with the bundle's leads (``record`` avoids re-reading the file)."""
    rec = record if record is not None else read_record(ref.path)
    if ref.stop > rec.n_samples or ref.start < 0:
        raise RecordError(ref.path, f"window [{ref.start}, {ref.stop}) outside the record's {rec.n_samples} samples")
    return select_leads(rec.slice(ref.start, ref.stop), leads)
