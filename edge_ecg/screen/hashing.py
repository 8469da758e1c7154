"""Content hashes of record files: the key that makes a screening run resumable.

A record is keyed by what is in its files, not by its path, so a folder that was copied,
renamed or re-exported with identical content is not screened twice, and a file that changed
under the same name is screened again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def record_files(path: str | Path) -> list[Path]:
    """The files that hold one record: a WFDB header and the signal files it names, else the file.

    For WFDB the header lists its signal files; a header that cannot be parsed still yields the
    header itself (the reader will report why it is bad, and the hash still identifies it).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dat", ".mat") and path.with_suffix(".hea").is_file():
        path = path.with_suffix(".hea")
        suffix = ".hea"
    if suffix != ".hea":
        return [path]
    files = [path]
    try:
        text = path.read_text(encoding="latin-1")
    except OSError:
        return files
    names: list[str] = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    # line 0 is the record line; each signal line starts with its file name (WFDB header format)
    for line in lines[1:]:
        name = line.split()[0]
        if name not in names and "/" not in name and "\\" not in name and name != "~":
            names.append(name)
    for name in names:
        f = path.parent / name
        if f.is_file():
            files.append(f)
    return files


def file_sha256(path: Path) -> str:
    """sha256 of one file, read in chunks (``hashlib.file_digest`` is Python 3.11+)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(path: str | Path) -> str:
    """sha256 over the record's files (each file's role and digest), as hex.

    The role of a file is its suffix, so the same bytes as ``.edf`` and as ``.csv`` are different
    records (they are read differently), while the folder and base name do not matter.
    """
    h = hashlib.sha256()
    for f in record_files(path):
        try:
            digest = file_sha256(f)
        except OSError as exc:  # unreadable file: key on the error so it is retried once fixed
            digest = f"unreadable:{type(exc).__name__}"
        h.update(f"{f.suffix.lower()}:{digest}\n".encode())
    return h.hexdigest()
