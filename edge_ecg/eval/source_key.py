"""What an evaluation cache depends on besides its inputs: the source of the streaming code.

A cache of what the stream produced (beats, evidence logs) is stale as soon as the code that
produced it changes, even when no setting did: the beat classifier's alignment changed every
cached beat label without touching a config value. Hashing the sources is blunt (a comment edit
re-streams too) but never serves stale figures.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

_PACKAGE = Path(__file__).resolve().parents[1]


def source_key(extra: str = "", packages: Iterable[str] = ("dsp", "stream")) -> str:
    """Hash of ``extra`` and the ``*.py`` and ``*.json`` files of ``edge_ecg``'s ``packages``. The
    JSON files are the shipped models the stream runs (``dsp/af_model.json``: whether atrial
    fibrillation is on changes the beat labels)."""
    h = hashlib.sha256(extra.encode())
    for sub in packages:
        for p in sorted([*(_PACKAGE / sub).glob("*.py"), *(_PACKAGE / sub).glob("*.json")]):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
