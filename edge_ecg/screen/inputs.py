"""Walking the inputs of a screening run: one entry per record, streamed, every odd path named.

An archive holds millions of files, so the walk is a generator (``os.scandir``, no listing kept
in memory) and the run screens while it walks. Whatever the walk meets that is not a readable
record but looks like one, or that is broken as a path, becomes an entry with the reason in plain
words, so the report lists it instead of dropping it: a dangling link, a link loop, a folder named
like a record (``x.hea/``), a file or folder that cannot be read (permission denied), a WFDB
signal file without its header, a file with an ECG extension that is not an ECG.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from edge_ecg.errors import RecordError

# Files with these suffixes are ECG exports or look like them: one that is not a record is listed
# with the reason. (.txt and .json are left out: READMEs, licences, metadata.)
ECG_SUFFIXES = (".hea", ".edf", ".xml", ".csv", ".dcm", ".dicom", ".scp", ".ecg", ".mwf", ".mfer", ".mfr")
# Files that may be records without saying so by name: sniffed by content, silent when they are not
SNIFFED_SUFFIXES = (".txt", ".json", "")


@dataclass(frozen=True)
class Found:
    """One path the walk met: a record to screen, or (``reason`` set) one that cannot be."""

    path: Path
    name: str  # as the report shows it: relative to the input folder
    recognised: bool = True  # False: an ECG-looking file the record finder did not take
    reason: str = ""


def display_name(path: Path, root: Path | None, strip: bool = True) -> str:
    """The name the report shows: relative to the input folder; a WFDB record without ``.hea``
    (``strip``: not for a folder named like one, which is shown as it is named)."""
    try:
        rel = path.relative_to(root) if root is not None else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    if strip and rel.suffix.lower() == ".hea":  # a WFDB record is named without extension (given .dat/.mat became .hea)
        rel = rel.with_suffix("")
    return rel.as_posix()


def walk_inputs(inputs: Iterable[str | os.PathLike[str]]) -> Iterator[Found]:
    """Every record under ``inputs`` and every odd path, in walk order (folders sorted).

    A named input that does not exist at all is a ``RecordError`` (a mistyped argument stops the
    run before it starts); a named input that is a dangling link is listed like any other.
    """
    inputs = [Path(p) for p in inputs]
    for inp in inputs:
        if not os.path.lexists(inp):
            if not inp.with_suffix(".hea").is_file():  # a WFDB record may be named without extension
                raise RecordError(inp, "no such file or folder")
    inputs = [p if os.path.lexists(p) else p.with_suffix(".hea") for p in inputs]
    return _walk(inputs)


def _walk(inputs: list[Path]) -> Iterator[Found]:
    several = len(inputs) > 1
    for inp in inputs:
        if inp.is_dir():
            root = inp.parent if several else inp
            yield from _walk_dir(inp, root, [])
        else:
            yield from _given_file(inp)


def _given_file(path: Path) -> Iterator[Found]:
    if path.suffix.lower() in (".dat", ".mat") and path.with_suffix(".hea").is_file():
        path = path.with_suffix(".hea")
    bad = _path_problem(path)
    yield Found(path, display_name(path, None, strip=not path.is_dir()), True, bad or "")


def _path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read at all, in plain words, or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "link loop: the link points back to itself through other links"
        if os.path.islink(path):
            return f"broken link: it points to {os.readlink(path)}, which does not exist"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied: the file cannot be read"
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return f"is a folder, not a file: a folder named like an ECG record ({path.suffix or 'no suffix'})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket)"
    if not os.access(path, os.R_OK):
        return "permission denied: the file cannot be read"
    return None


def _walk_dir(folder: Path, root: Path, ancestors: list[tuple[int, int]]) -> Iterator[Found]:
    try:
        st = os.stat(folder)
    except OSError as exc:
        yield Found(folder, display_name(folder, root), True, f"folder cannot be read: {exc.strerror or exc}")
        return
    ident = (st.st_dev, st.st_ino)
    if ident in ancestors:
        yield Found(folder, display_name(folder, root), True,
                    "link loop: this folder link leads back to a folder that contains it (not searched again)")
        return
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except PermissionError:
        yield Found(folder, display_name(folder, root), True, "permission denied: the folder cannot be listed")
        return
    except OSError as exc:
        yield Found(folder, display_name(folder, root), True, f"folder cannot be listed: {exc.strerror or exc}")
        return
    names = {e.name for e in entries}
    chain = ancestors + [ident]
    for entry in entries:
        path = Path(entry.path)
        suffix = path.suffix.lower()
        try:
            is_dir = entry.is_dir()  # follows links
        except OSError:
            is_dir = False
        if is_dir:
            if suffix in ECG_SUFFIXES:
                yield Found(path, display_name(path, root, strip=False), True,
                            f"is a folder, not a file: a folder named like an ECG record ({suffix})")
            yield from _walk_dir(path, root, chain)
            continue
        problem = None
        if entry.is_symlink() or not entry.is_file():
            problem = _path_problem(path)
            if problem and not entry.is_symlink() and suffix not in ECG_SUFFIXES + (".dat", ".mat", ""):
                continue  # a socket or pipe with an unrelated name
        if problem:
            yield Found(path, display_name(path, root), True, problem)
            continue
        found = _classify(path, suffix, names, root)
        if found is not None:
            yield found


def _classify(path: Path, suffix: str, names: set[str], root: Path) -> Found | None:
    """A regular file in a walked folder: a record, an ECG-looking file to list, or nothing."""
    from edge_ecg.records import _is_record_file

    name = display_name(path, root)
    if suffix in (".dat", ".mat"):
        if path.with_suffix(".hea").name in names:
            return None  # the record is its .hea
        if suffix == ".dat":
            return Found(path, name, False, "WFDB signal file without its .hea header (the header holds the rate, "
                                            "leads and scale): cannot be read")
        return None  # .mat files are often not ECGs (MATLAB data)
    if suffix not in ECG_SUFFIXES and suffix not in SNIFFED_SUFFIXES:
        return None
    if not os.access(path, os.R_OK):
        return Found(path, name, True, "permission denied: the file cannot be read")
    if suffix == "" and path.name + ".hea" in names:
        return None  # WFDB companions without suffix
    if _is_record_file(path):
        return Found(path, name, True)
    if suffix in ECG_SUFFIXES:
        return Found(path, name, False)
    return None


def walk_list(lines: Iterable[str]) -> Iterator[Found]:
    """The paths of an input list (one per line: an archive's export of millions of files), read
    as they come. A listed path that does not exist is a row with the reason, not a stop."""
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text)
        if not os.path.lexists(path) and path.with_suffix(".hea").is_file():
            path = path.with_suffix(".hea")
        if not os.path.lexists(path):
            yield Found(path, path.as_posix(), True, "no such file or folder (named in the input list)")
        elif path.is_dir():
            yield from _walk_dir(path, path.parent, [])
        else:
            for f in _given_file(path):
                yield Found(f.path, display_name(f.path, Path(f.path.anchor)), f.recognised, f.reason)
