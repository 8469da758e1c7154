"""Canonical lead names, and the limb leads a cart leaves out.

Carts and databases spell leads many ways (MLII, "ii", "ECG II", "lead II"). Everything past
the readers uses one spelling, so a bundle that asks for "II" finds it in any source.
"""

from __future__ import annotations

import re

import numpy as np

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
