"""Canonical lead names, and the limb leads a cart leaves out.

Carts and databases spell leads many ways (MLII, "ii", "ECG II", "lead II"). Everything past
the readers uses one spelling, so a bundle that asks for "II" finds it in any source.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from edge_ecg.errors import RecordError

STANDARD_12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_DERIVED = ("III", "aVR", "aVL", "aVF")

_CANON = {name.upper(): name for name in STANDARD_12}
# Modified limb leads of Holter/monitor databases (MIT-BIH's MLII, ML2...) are treated as
# their standard counterparts: that is how monitors and the literature use them.
_ALIASES = {"MLI": "I", "MLII": "II", "MLIII": "III", "ML2": "II", "ML1": "I", "ML3": "III", "D1": "I", "D2": "II", "D3": "III"}
_PREFIX = re.compile(r"^(?:ECG|LEAD|EKG)[\s_\-]*", re.IGNORECASE)


def canonical_lead(name: str) -> str:
    """The canonical spelling of a lead name; unknown names come back stripped and upper-cased.

    Unknown names are kept (a generic chest lead "V", Frank "VX") so that nothing is silently
    dropped; consumers that need a standard lead ask for it and get a clear error if absent.
    """
    raw = name.strip()
    key = _PREFIX.sub("", raw).replace(" ", "").upper()
    if key in _CANON:
        return _CANON[key]
    if key in _ALIASES:
        return _ALIASES[key]
    if re.fullmatch(r"AV[RLF]", key):
        return "aV" + key[2]
    if key.isdigit():  # "ECG 1" of a multi-channel monitor: keep it recognisable, not "1"
        return "ECG" + key
    return key or raw.upper()


def derive_limb_leads(i: np.ndarray, ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL, aVF from I and II (Einthoven and Goldberger), for 8-lead carts."""
    return {
        "III": ii - i,
        "aVR": -(i + ii) / 2.0,
        "aVL": i - ii / 2.0,
        "aVF": ii - i / 2.0,
    }


def canonical_leads(names: Sequence[str], where: str | os.PathLike[str] = "<record>") -> tuple[tuple[str, ...], dict[str, str]]:
    """Canonical names for a record's channels, with channels named alike told apart.

    Several PhysioNet databases name both channels ``ECG`` (SVDB, some of AFDB): such names are
    numbered ``ECG1``, ``ECG2``, ... in channel order, and the returned mapping (new name ->
    name in the file) says which were renamed, for the record's metadata. A number that would
    spell a standard lead (a generic chest lead ``V`` twice must not become ``V1`` and ``V2``)
    gets a dash (``V-1``). Two channels that both mean one standard lead (``II`` and ``MLII``,
    or ``II`` twice) stay an error naming them: which one a model should read is not ours to
    guess.
    """
    canon = [canonical_lead(n) for n in names]
    counts: dict[str, int] = {}
    for c in canon:
        counts[c] = counts.get(c, 0) + 1
    clash = sorted(c for c, k in counts.items() if k > 1 and c in _CANON.values())
    if clash:
        pairs = "; ".join(f"{' and '.join(repr(str(n).strip()) for n, c in zip(names, canon) if c == lead)} "
                          f"{'both' if counts[lead] == 2 else 'all'} mean {lead}" for lead in clash)
        raise RecordError(where, f"lead name collision: {pairs}")
    taken = {c for c, k in counts.items() if k == 1}
    out: list[str] = []
    renamed: dict[str, str] = {}
    seen: dict[str, int] = {}
    for name, c in zip(names, canon):
        if counts[c] == 1:
            out.append(c)
            continue
        k = seen.get(c, 0)
        while True:
            k += 1
            new = f"{c}{k}" if not c[-1:].isdigit() else f"{c}-{k}"
            if canonical_lead(new) in _CANON.values() or new.upper() in _CANON:
                new = f"{c}-{k}"
            if new not in taken:
                break
        seen[c] = k
        taken.add(new)
        out.append(new)
        renamed[new] = str(name).strip()
    return tuple(out), renamed
