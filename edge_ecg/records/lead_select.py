"""Which leads a model sees: one function shared by the factory (training windows) and the
appliance (``edge_ecg.inference.Classifier``), so a bundle is served exactly as it was trained.

Two-lead monitor databases differ in their second lead (MIT-BIH: V1, V2, V4 or V5, and record
114 stores V5 *before* MLII; CinC 2015: V, MCL, III, aVR, ...). A two-lead strip model is trained
on "lead II + the monitor's other lead" and a bedside cart may send its leads in any order, so
rendering "every lead in the window's order" would show a model leads it never saw in places it
never saw them. ``select_leads`` puts the wanted leads in the wanted order, filling a missing one
from the record's remaining leads; the bundle stores the wanted names (``[input] leads``).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from edge_ecg.errors import RecordError
from edge_ecg.records.record import Record


def select_leads(record: Record, leads: Sequence[str]) -> Record:
    """``record`` restricted to ``leads`` (in that order), standing in the record's other leads
    where one is missing.

    A wanted lead the record has is used as is; each missing one is filled, in order, by the
    first lead of the record not otherwise used (``meta["lead_substitutions"]`` says which), so
    ("II", "V") on a record with (V5, MLII) gives (MLII, V5). Raises ``RecordError`` naming the
    record when it has fewer leads than wanted. An empty ``leads`` returns the record unchanged.
    """
    wanted = [str(x) for x in leads]
    if not wanted:
        return record
    have = list(record.leads)
    present = [name for name in wanted if name in have]
    spare = [name for name in have if name not in present]
    cols, subs = [], {}
    for name in wanted:
        if name in have:
            cols.append(have.index(name))
        elif spare:
            other = spare.pop(0)
            cols.append(have.index(other))
            subs[name] = other
        else:
            raise RecordError(record.source or record.name,
                              f"needs {len(wanted)} ECG leads {tuple(wanted)}, has only {tuple(have)}")
    meta = dict(record.meta)
    meta.pop("other_signals", None)  # not needed by the renderer; keeps windows small
    if subs:
        meta["lead_substitutions"] = subs
    return dataclasses.replace(record, signals=record.signals[:, cols], leads=tuple(wanted), meta=meta)
