"""Typed frames of the cart wire protocol (version 1) and their fixed little-endian payload layouts.

Every frame on the wire is ``COBS(payload || CRC32_LE(payload)) || 0x00``; this module only knows
payloads (the bytes before CRC and COBS). ``firmware_bridge/PROTOCOL.md`` documents every layout
byte by byte; the C firmware in ``firmware/`` writes the same bytes, which the shared test vectors
in ``vectors/`` prove.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

import numpy as np

PROTOCOL_VERSION = 1

# Frame types: device -> host below 0x80, host -> device from 0x80.
T_HELLO = 0x01
T_SAMPLES = 0x02
T_STATUS = 0x03
T_PONG = 0x04
T_GET_HELLO = 0x80
T_START = 0x81
T_STOP = 0x82
T_PING = 0x83

MAX_LEADS = 16
LEAD_NAME_BYTES = 8
HELLO_LEAD_BYTES = LEAD_NAME_BYTES + 4  # name, then float32 microvolts per LSB
# Largest payload either side accepts (the firmware's frame buffer); longer frames are garbage.
MAX_PAYLOAD = 4096

# Row status word (u16, one per sample row of a SAMPLES frame): which electrode is off, and pacing.
ELECTRODES = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
ELECTRODE_BIT = {name: 1 << i for i, name in enumerate(ELECTRODES)}
PACER_BIT = 1 << 15

# Which electrodes each lead is measured from (a lead is off when any of them is off). Chest
# leads are referred to Wilson's central terminal, which needs RA, LA and LL.
_LIMB = ("RA", "LA", "LL")
LEAD_ELECTRODES: dict[str, tuple[str, ...]] = {
    "I": ("RA", "LA"),
    "II": ("RA", "LL"),
    "III": ("LA", "LL"),
    "aVR": _LIMB,
    "aVL": _LIMB,
    "aVF": _LIMB,
    **{f"V{i}": _LIMB + (f"V{i}",) for i in range(1, 7)},
}


def lead_electrode_mask(lead: str) -> int:
    """Status bits that make ``lead`` untrustworthy; unknown leads depend on all limb electrodes."""
    mask = 0
    for electrode in LEAD_ELECTRODES.get(lead, _LIMB):
        mask |= ELECTRODE_BIT[electrode]
    return mask


class FrameError(ValueError):
    """A payload that passed its CRC but does not follow the layout of its type."""


@dataclass(frozen=True)
class Hello:
    """Device identity and stream format; the device sends it on GET_HELLO (and at power-up)."""

    device_id: int
    session_id: int  # random per power-up: a changed session means the sample index restarted
    fs: float  # Hz, carried as millihertz
    uv_per_lsb: tuple[float, ...]  # per lead: microvolts per ADC count (float32 on the wire)
    leads: tuple[str, ...]
    firmware: tuple[int, int, int] = (1, 0, 0)
    rows_per_frame: int = 10
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, eq=False)
class Samples:
    """``n_rows`` consecutive rows starting at the cart's running sample index ``index`` (mod 2**32)."""

    index: int
    values: np.ndarray  # int32 (n_rows, n_leads), ADC counts, 24-bit signed range
    status: np.ndarray  # uint16 (n_rows,), electrode-off bits and PACER_BIT

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_leads(self) -> int:
        return int(self.values.shape[1])

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Samples)
            and self.index == other.index
            and np.array_equal(self.values, other.values)
            and np.array_equal(self.status, other.status)
        )


@dataclass(frozen=True)
class Status:
    """Periodic device health (about once a second while powered)."""

    battery_pct: int = 255  # 255 = on mains / unknown
    battery_mv: int = 0
    errors: int = 0  # STATUS_ERR_* bits
    dropped_rows: int = 0  # rows lost to ring-buffer overflow since power-up
    uptime_ms: int = 0
    rx_bad_frames: int = 0  # host frames the device rejected


STATUS_ERR_RING_OVERFLOW = 1 << 0
STATUS_ERR_ADC_FAULT = 1 << 1
STATUS_ERR_LOW_BATTERY = 1 << 2
STATUS_ERR_BAD_COMMAND = 1 << 3


@dataclass(frozen=True)
class Pong:
    nonce: int
    uptime_ms: int = 0


@dataclass(frozen=True)
class Command:
    """Host -> device: GET_HELLO, START, STOP or PING (with a nonce the PONG echoes)."""

    kind: int  # T_GET_HELLO, T_START, T_STOP, T_PING
    nonce: int = 0


Frame = Union[Hello, Samples, Status, Pong, Command]

_HELLO_HEAD = struct.Struct("<BBBBBBBBQII")  # 24 bytes
_HELLO_LSB = struct.Struct("<f")
_SAMPLES_HEAD = struct.Struct("<BBHI")  # 8 bytes
_STATUS = struct.Struct("<BBHIIII")  # 20 bytes
_PONG = struct.Struct("<B3xII")  # 12 bytes
_PING = struct.Struct("<B3xI")  # 8 bytes


def pack_payload(frame: Frame) -> bytes:
    """The payload bytes of ``frame`` (what the CRC covers)."""
    if isinstance(frame, Samples):
        return pack_samples(frame.index, frame.values, frame.status)
    if isinstance(frame, Hello):
        if not 1 <= len(frame.leads) <= MAX_LEADS:
            raise FrameError(f"HELLO: {len(frame.leads)} leads (1..{MAX_LEADS})")
        if len(frame.uv_per_lsb) != len(frame.leads):
            raise FrameError(f"HELLO: {len(frame.uv_per_lsb)} LSB sizes for {len(frame.leads)} leads")
        entries = b""
        for name, lsb in zip(frame.leads, frame.uv_per_lsb):
            raw = name.encode("ascii")
            if not 0 < len(raw) <= LEAD_NAME_BYTES:
                raise FrameError(f"HELLO: lead name {name!r} must be 1..{LEAD_NAME_BYTES} ASCII bytes")
            if not (np.isfinite(lsb) and lsb > 0):
                raise FrameError(f"HELLO: lead {name!r} LSB size {lsb!r} must be a positive number")
            entries += raw.ljust(LEAD_NAME_BYTES, b"\0") + _HELLO_LSB.pack(lsb)
        major, minor, patch = frame.firmware
        head = _HELLO_HEAD.pack(
            T_HELLO, frame.protocol_version, major, minor, patch, len(frame.leads), frame.rows_per_frame, 0,
            frame.device_id, frame.session_id, int(round(frame.fs * 1000)),
        )
        return head + entries
    if isinstance(frame, Status):
        return _STATUS.pack(
            T_STATUS, frame.battery_pct, frame.battery_mv, frame.errors, frame.dropped_rows,
            frame.uptime_ms, frame.rx_bad_frames,
        )
    if isinstance(frame, Pong):
        return _PONG.pack(T_PONG, frame.nonce, frame.uptime_ms)
    if isinstance(frame, Command):
        if frame.kind == T_PING:
            return _PING.pack(T_PING, frame.nonce)
        if frame.kind in (T_GET_HELLO, T_START, T_STOP):
            return bytes([frame.kind])
        raise FrameError(f"unknown command type 0x{frame.kind:02x}")
    raise TypeError(f"not a frame: {frame!r}")


def pack_samples(index: int, values: np.ndarray, status: np.ndarray | None = None) -> bytes:
    """SAMPLES payload: header, then per row a u16 status and the leads as 24-bit LE two's complement."""
    v = np.asarray(values)
    if v.ndim != 2 or not 1 <= v.shape[1] <= MAX_LEADS:
        raise FrameError(f"SAMPLES: values must be (rows, 1..{MAX_LEADS} leads), got shape {v.shape}")
    rows, leads = v.shape
    if rows > 0xFFFF:
        raise FrameError(f"SAMPLES: {rows} rows (at most 65535)")
    if v.size and (v.min() < -(1 << 23) or v.max() >= (1 << 23)):
        raise FrameError("SAMPLES: a value is outside the 24-bit signed range")
    st = np.zeros(rows, np.uint16) if status is None else np.asarray(status, dtype=np.uint16)
    if st.shape != (rows,):
        raise FrameError(f"SAMPLES: status must have one word per row ({rows}), got shape {st.shape}")
    body = np.empty((rows, 2 + 3 * leads), dtype=np.uint8)
    body[:, 0] = st & 0xFF
    body[:, 1] = st >> 8
    u = v.astype(np.int64) & 0xFFFFFF
    b = body[:, 2:].reshape(rows, leads, 3)
    b[:, :, 0] = u & 0xFF
    b[:, :, 1] = (u >> 8) & 0xFF
    b[:, :, 2] = u >> 16
    return _SAMPLES_HEAD.pack(T_SAMPLES, leads, rows, index & 0xFFFFFFFF) + body.tobytes()


def _unpack_rows(body: np.ndarray, leads: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 2 + 3*leads) uint8 -> values int32 (rows, leads) and status uint16 (rows,)."""
    rows = body.shape[0]
    status = body[:, 0].astype(np.uint16) | (body[:, 1].astype(np.uint16) << 8)
    b = body[:, 2:].reshape(rows, leads, 3).astype(np.int32)
    u = b[:, :, 0] | (b[:, :, 1] << 8) | (b[:, :, 2] << 16)
    return (u ^ 0x800000) - 0x800000, status  # sign-extend 24 -> 32 bits without branches


def unpack_samples_many(payloads: list[bytes]) -> list[Samples | FrameError]:
    """SAMPLES payloads -> frames, unpacking all rows of the same lead count in one numpy pass.

    A serial read holds many frames; unpacking each on its own costs more in numpy call overhead
    than in arithmetic, so rows of equal width are stacked, unpacked once, and split back.
    Entries that do not fit the layout come back as ``FrameError`` (in place).
    """
    out: list[Samples | FrameError] = [FrameError("")] * len(payloads)
    groups: dict[int, list[tuple[int, int, int]]] = {}
    for k, payload in enumerate(payloads):
        n = len(payload)
        if n < _SAMPLES_HEAD.size:
            out[k] = FrameError(f"SAMPLES: {n} bytes, header needs {_SAMPLES_HEAD.size}")
            continue
        _, leads, rows, index = _SAMPLES_HEAD.unpack_from(payload)
        if not 1 <= leads <= MAX_LEADS:
            out[k] = FrameError(f"SAMPLES: {leads} leads (1..{MAX_LEADS})")
            continue
        if n != _SAMPLES_HEAD.size + rows * (2 + 3 * leads):
            out[k] = FrameError(f"SAMPLES: {n} bytes but {rows} rows x {leads} leads need {_SAMPLES_HEAD.size + rows * (2 + 3 * leads)}")
            continue
        groups.setdefault(leads, []).append((k, rows, index))
    for leads, items in groups.items():
        body = b"".join(payloads[k][_SAMPLES_HEAD.size :] for k, _, _ in items)
        rows_all = np.frombuffer(body, dtype=np.uint8).reshape(-1, 2 + 3 * leads)
        values, status = _unpack_rows(rows_all, leads)
        at = 0
        for k, rows, index in items:
            out[k] = Samples(index=index, values=values[at : at + rows], status=status[at : at + rows])
            at += rows
    return out


def unpack_payload(payload: bytes) -> Frame:
    """The typed frame of a CRC-checked payload; ``FrameError`` says what does not fit its layout."""
    if not payload:
        raise FrameError("empty payload")
    kind = payload[0]
    n = len(payload)
    if kind == T_SAMPLES:
        if n < _SAMPLES_HEAD.size:
            raise FrameError(f"SAMPLES: {n} bytes, header needs {_SAMPLES_HEAD.size}")
        _, leads, rows, index = _SAMPLES_HEAD.unpack_from(payload)
        if not 1 <= leads <= MAX_LEADS:
            raise FrameError(f"SAMPLES: {leads} leads (1..{MAX_LEADS})")
        width = 2 + 3 * leads
        if n != _SAMPLES_HEAD.size + rows * width:
            raise FrameError(f"SAMPLES: {n} bytes but {rows} rows x {leads} leads need {_SAMPLES_HEAD.size + rows * width}")
        body = np.frombuffer(payload, dtype=np.uint8, offset=_SAMPLES_HEAD.size).reshape(rows, width)
        values, status = _unpack_rows(body, leads)
        return Samples(index=index, values=values, status=status)
    if kind == T_HELLO:
        if n < _HELLO_HEAD.size:
            raise FrameError(f"HELLO: {n} bytes, header needs {_HELLO_HEAD.size}")
        (_, version, major, minor, patch, leads, rpf, _res, device_id, session, fs_mhz) = _HELLO_HEAD.unpack_from(payload)
        if not 1 <= leads <= MAX_LEADS or n != _HELLO_HEAD.size + leads * HELLO_LEAD_BYTES:
            raise FrameError(f"HELLO: {n} bytes do not hold {leads} lead entries")
        names, lsbs = [], []
        for i in range(leads):
            at = _HELLO_HEAD.size + i * HELLO_LEAD_BYTES
            raw = payload[at : at + LEAD_NAME_BYTES]
            name = raw.rstrip(b"\0")
            if not name or not name.isascii() or b"\0" in name:
                raise FrameError(f"HELLO: lead {i} name {raw!r} is not ASCII")
            (lsb,) = _HELLO_LSB.unpack_from(payload, at + LEAD_NAME_BYTES)
            if not (np.isfinite(lsb) and lsb > 0):
                raise FrameError(f"HELLO: lead {i} LSB size {lsb!r} must be a positive number")
            names.append(name.decode("ascii"))
            lsbs.append(float(lsb))
        if fs_mhz == 0:
            raise FrameError("HELLO: sampling rate 0")
        return Hello(
            device_id=device_id, session_id=session, fs=fs_mhz / 1000.0, uv_per_lsb=tuple(lsbs), leads=tuple(names),
            firmware=(major, minor, patch), rows_per_frame=rpf, protocol_version=version,
        )
    if kind == T_STATUS:
        if n != _STATUS.size:
            raise FrameError(f"STATUS: {n} bytes, layout has {_STATUS.size}")
        _, pct, mv, errors, dropped, uptime, bad = _STATUS.unpack(payload)
        return Status(battery_pct=pct, battery_mv=mv, errors=errors, dropped_rows=dropped, uptime_ms=uptime, rx_bad_frames=bad)
    if kind == T_PONG:
        if n != _PONG.size:
            raise FrameError(f"PONG: {n} bytes, layout has {_PONG.size}")
        _, nonce, uptime = _PONG.unpack(payload)
        return Pong(nonce=nonce, uptime_ms=uptime)
    if kind == T_PING:
        if n != _PING.size:
            raise FrameError(f"PING: {n} bytes, layout has {_PING.size}")
        return Command(T_PING, _PING.unpack(payload)[1])
    if kind in (T_GET_HELLO, T_START, T_STOP):
        if n != 1:
            raise FrameError(f"command 0x{kind:02x}: {n} bytes, layout has 1")
        return Command(kind)
    raise FrameError(f"unknown frame type 0x{kind:02x}")
