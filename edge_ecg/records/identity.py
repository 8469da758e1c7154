"""Patient identifiers in a record: kept in one place, so that they can be left out on the way out.

Readers put what a file says about the patient (id, name, birth date, sex) under
``record.meta[PATIENT_KEY]`` and nowhere else: the rest of ``meta`` is patient-free (format,
device, leads, notes). ``anonymize`` drops that entry, so a converted file (``edge-ecg convert
--anonymize``) or a screening output carries no patient name, id or birth date unless asked to.
The writers put the identifiers back in the fields their format has for them (EDF+ patient
field, aECG subject id, a CSV ``# patient_...`` line) only when the record still holds them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edge_ecg.records.record import Record

PATIENT_KEY = "patient"
IDENTIFYING = ("id", "name", "birth_date")  # what de-identification must remove


def identifiers(record: Record) -> dict[str, str]:
    """The patient fields a reader found (``id``, ``name``, ``birth_date``, ``sex``), or {}."""
    found = record.meta.get(PATIENT_KEY) or {}
    return {k: str(v) for k, v in found.items() if v not in (None, "")}


def anonymize(record: Record) -> Record:
    """``record`` without patient identifiers; its name is replaced when it was one of them."""
    ids = identifiers(record)
    if not ids and PATIENT_KEY not in record.meta:
        return record
    meta: dict[str, Any] = {k: v for k, v in record.meta.items() if k != PATIENT_KEY}
    name = record.name
    if name and any(name.strip() and name.strip() == ids.get(k, "").strip() for k in IDENTIFYING):
        name = "anonymous"
    meta["anonymized"] = True
    return dataclasses.replace(record, meta=meta, name=name)


def patient_free(text: str, record: Record) -> bool:
    """Whether ``text`` holds none of ``record``'s identifying values (for checks and tests)."""
    ids = identifiers(record)
    return not any(v and len(v) >= 3 and v in text for k, v in ids.items() if k in IDENTIFYING)
