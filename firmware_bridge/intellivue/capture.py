"""The monitor captures in ``../shared/monitors/intellivue-mp90`` and their cross-check files.

A capture (``*.data.txt``) is the MP90's side of a session as one line of hex: frames from BOF
to EOF, stored *after* transparency was removed, so a 0xC1 inside a frame is data and the only
way through the file is the frame's own length field. ``read_capture`` walks it that way and
refuses (``RecordError`` naming file and offset) anything that does not hold together.

PERSEUS's decoded waves (``*.ecg_i.txt``, ``*.pleth.txt``) are binary records of a u32
little-endian time in milliseconds and a u16 little-endian value. Its alarm log
(``*.alarm.txt``) is text: a ``Time: H:M:S:ms`` line per alarm poll, then one block of
``Alert_*`` lines per active alarm, each ended by a dashed line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError
from firmware_bridge.intellivue.framing import HEADER_LEN, escape, fcs_ok

# scenario names of the shared MP90 captures (file prefixes), and short aliases for the CLI/demo
CAPTURES = {
    "nsr": "1A-nsr",
    "nsr-spo2-85": "1B-nsr-spo2-85",
    "nsr-no-pleth": "1C-nsr-no-pleth",
    "vt": "1D-vt",
    "vf": "1E-vf",
}
DEFAULT_DIR = "monitors/intellivue-mp90"


@dataclass(frozen=True)
class Capture:
    """One capture: the frames as stored (header, user data, FCS; no BOF/EOF, no escaping)."""

    name: str
    path: Path
    bodies: tuple[bytes, ...]

    @property
    def user_data(self) -> list[bytes]:
        return [b[HEADER_LEN:-2] for b in self.bodies]

    def wire(self) -> bytes:
        """The bytes as they were on the cable: each frame re-escaped between BOF and EOF."""
        return b"".join(b"\xc0" + escape(b) + b"\xc1" for b in self.bodies)


def read_capture(path: str | os.PathLike[str]) -> Capture:
    path = Path(path)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise RecordError(path, f"cannot read capture: {exc.strerror or exc}") from None
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise RecordError(path, f"not a hex capture: {exc}") from None
    bodies = []
    i = 0
    while i < len(raw):
        if raw[i] != 0xC0:
            raise RecordError(path, f"byte {i}: expected a frame start (C0), found {raw[i]:02X}")
        if i + 1 + HEADER_LEN > len(raw):
            raise RecordError(path, f"byte {i}: frame header cut off at the end of the file")
        length = int.from_bytes(raw[i + 3 : i + 5], "big")
        end = i + 1 + HEADER_LEN + length + 2
        if end >= len(raw) or raw[end] != 0xC1:
            raise RecordError(path, f"byte {i}: frame of length {length} does not end with C1")
        bodies.append(raw[i + 1 : end])
        i = end + 1
    if not bodies:
        raise RecordError(path, "no frames")
    name = path.name.split(".", 1)[0]
    return Capture(name, path, tuple(bodies))


def fcs_valid(capture: Capture) -> list[bool]:
    return [fcs_ok(b) for b in capture.bodies]


def shared_dir() -> Path:
    """``../shared`` beside the checkout, or ``$EDGE_ECG_SHARED``."""
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("EDGE_ECG_SHARED", repo.parent / "shared"))


def resolve_capture(spec: str | os.PathLike[str]) -> Path:
    """A capture path from a path, a file prefix ("1D-vt") or an alias ("vt", "intellivue-vt")."""
    p = Path(spec)
    if p.is_file():
        return p
    name = str(spec)
    name = name[len("intellivue-"):] if name.startswith("intellivue-") else name
    prefix = CAPTURES.get(name, name)
    folder = shared_dir() / DEFAULT_DIR
    candidate = folder / f"{prefix}.data.txt"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(CAPTURES))
    raise RecordError(spec, f"no such capture (a *.data.txt path, a prefix like 1D-vt, or one of {known} in {folder})")


def companion(capture_path: str | os.PathLike[str], kind: str) -> Path:
    """The PERSEUS file of a capture: kind is ecg_i, pleth, alarm or numerics."""
    p = Path(capture_path)
    return p.with_name(p.name.split(".", 1)[0] + f".{kind}.txt")


def read_perseus_wave(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(time in ms, value) of a PERSEUS decoded wave file."""
    rec = np.fromfile(path, dtype=np.dtype([("t", "<u4"), ("v", "<u2")]))
    return rec["t"].astype(np.int64), rec["v"].astype(np.int64)


@dataclass(frozen=True)
class LoggedAlarm:
    source: str
    code: str
    type: str
    state: str
    message: str


_TIME = re.compile(r"Time:\s*(\d+):(\d+):(\d+):(\d+)")


def read_alarm_log(path: str | os.PathLike[str]) -> list[tuple[float, list[LoggedAlarm]]]:
    """The monitor's alarm polls as PERSEUS logged them: (seconds of day, active alarms).

    The ``ms`` field counts milliseconds (the polls come every 1.024 s: ``:24``, ``:48``...)."""
    polls: list[tuple[float, list[LoggedAlarm]]] = []
    cur: dict[str, str] = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.rstrip("\n")
            m = _TIME.match(line)
            if m:
                h, mi, s, ms = (int(x) for x in m.groups())
                polls.append((h * 3600 + mi * 60 + s + ms / 1000.0, []))
            elif line.startswith("Alert_") and ": " in line:
                key, _, value = line.partition(": ")
                cur[key] = value.strip().rstrip("\x00").strip()
            elif line.startswith("---") and polls and cur:  # (a dashed line after no alarm lines ends nothing)
                polls[-1][1].append(LoggedAlarm(cur.get("Alert_source", ""), cur.get("Alert_code", ""), cur.get("Alert_type", ""),
                                                cur.get("Alert_state", ""), cur.get("Alert_message", "")))
                cur = {}
    return polls
