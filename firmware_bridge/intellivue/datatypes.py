"""The Programming Guide's basic data types: big-endian integers, FLOATType, AttributeList, TextId lists.

``Reader`` never reads past its end: every short or inconsistent structure raises ``PduError``
(a ``ValueError``), which the session turns into a counter. ``Writer`` builds PDUs with length
fields filled in after the fact.
"""

from __future__ import annotations

import math
import struct
import unicodedata
from dataclasses import dataclass


class PduError(ValueError):
    """A PDU that does not parse: truncated, or a length field that disagrees with the bytes."""


class Reader:
    """Bounds-checked big-endian reader over one PDU (or a slice of it)."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else min(end, len(data))

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise PduError(f"need {n} bytes at offset {self.pos}, {self.end - self.pos} left")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def sub(self, n: int) -> "Reader":
        """A reader over the next ``n`` bytes (and skip them here)."""
        if n < 0 or self.pos + n > self.end:
            raise PduError(f"structure of {n} bytes at offset {self.pos} runs past the end ({self.end - self.pos} left)")
        r = Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return r


class Writer:
    """Big-endian builder; ``length_at`` reserves a u16 filled with the bytes written after it."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._open: list[int] = []

    def u8(self, v: int) -> "Writer":
        self.buf.append(v & 0xFF)
        return self

    def u16(self, v: int) -> "Writer":
        self.buf += struct.pack(">H", v & 0xFFFF)
        return self

    def u32(self, v: int) -> "Writer":
        self.buf += struct.pack(">I", v & 0xFFFFFFFF)
        return self

    def raw(self, b: bytes) -> "Writer":
        self.buf += b
        return self

    def begin_length(self) -> "Writer":
        """Reserve a u16 length; ``end_length`` fills it with the number of bytes written since."""
        self._open.append(len(self.buf))
        self.buf += b"\0\0"
        return self

    def end_length(self) -> "Writer":
        at = self._open.pop()
        struct.pack_into(">H", self.buf, at, len(self.buf) - at - 2)
        return self

    def bytes(self) -> bytes:
        if self._open:
            raise ValueError("unclosed length field")
        return bytes(self.buf)


# -- FLOATType: 8-bit signed exponent, 24-bit signed mantissa, value = mantissa * 10**exponent --
FLOAT_NAN = 0x007FFFFF
FLOAT_NRES = 0x00800000
FLOAT_POS_INF = 0x007FFFFE
FLOAT_NEG_INF = 0x00800002


def decode_float(raw: int) -> float:
    """FLOATType -> float; NaN, "not at this resolution" -> nan; +-infinity -> +-inf."""
    mant = raw & 0xFFFFFF
    if mant in (0x7FFFFF, 0x800000):
        return math.nan
    if mant == 0x7FFFFE:
        return math.inf
    if mant == 0x800002:
        return -math.inf
    exp = (raw >> 24) & 0xFF
    if exp >= 128:
        exp -= 256
    if mant >= 0x800000:
        mant -= 0x1000000
    # dividing by an exact power of ten gives the correctly rounded decimal (40955e-3 -> 40.955)
    return mant * 10.0**exp if exp >= 0 else mant / 10.0 ** (-exp)


def encode_float(value: float, digits: int = 6) -> int:
    """float -> FLOATType with the smallest exponent that keeps the mantissa in 24 bits (NaN -> NaN code)."""
    if value is None or math.isnan(value):
        return FLOAT_NAN
    if math.isinf(value):
        return FLOAT_POS_INF if value > 0 else FLOAT_NEG_INF
    for exp in range(-digits, 8):
        mant = round(value / 10.0**exp)
        if -0x7FFFFD <= mant <= 0x7FFFFD and abs(mant * 10.0**exp - value) <= abs(value) * 1e-9 + 1e-12:
            return ((exp & 0xFF) << 24) | (mant & 0xFFFFFF)
    for exp in range(-digits, 128):  # no exact form: the nearest that fits
        mant = round(value / 10.0**exp)
        if -0x7FFFFD <= mant <= 0x7FFFFD:
            return ((exp & 0xFF) << 24) | (mant & 0xFFFFFF)
    return FLOAT_POS_INF if value > 0 else FLOAT_NEG_INF


@dataclass(frozen=True)
class ManagedObjectId:
    obj_class: int
    context_id: int = 0
    handle: int = 0

    @staticmethod
    def read(r: Reader) -> "ManagedObjectId":
        return ManagedObjectId(r.u16(), r.u16(), r.u16())

    def write(self, w: Writer) -> None:
        w.u16(self.obj_class).u16(self.context_id).u16(self.handle)


MDS_OBJECT = ManagedObjectId(33, 0, 0)  # NOM_MOC_VMS_MDS, context 0, handle 0: the top-level object


def read_attribute_list(r: Reader) -> dict[int, bytes]:
    """AttributeList -> {attribute_id: value bytes}; a list whose lengths disagree raises ``PduError``."""
    count, length = r.u16(), r.u16()
    body = r.sub(length)
    out: dict[int, bytes] = {}
    for _ in range(count):
        aid, alen = body.u16(), body.u16()
        out[aid] = body.take(alen)
    return out


def write_attribute_list(w: Writer, attrs: list[tuple[int, bytes]] | dict[int, bytes]) -> None:
    items = list(attrs.items()) if isinstance(attrs, dict) else list(attrs)
    w.u16(len(items)).begin_length()
    for aid, value in items:
        w.u16(aid).u16(len(value)).raw(value)
    w.end_length()


def read_text_id_list(r: Reader) -> tuple[int, ...]:
    """TextIdList (count, length, u32 ids)."""
    count, length = r.u16(), r.u16()
    body = r.sub(length)
    return tuple(body.u32() for _ in range(count))


def write_text_id_list(w: Writer, ids: tuple[int, ...] | list[int]) -> None:
    w.u16(len(ids)).u16(4 * len(ids))
    for i in ids:
        w.u32(i)


def bcd(b: int) -> int:
    """One BCD byte (0x59 -> 59); invalid nibbles give -1."""
    hi, lo = b >> 4, b & 0xF
    return hi * 10 + lo if hi < 10 and lo < 10 else -1


def read_absolute_time(raw: bytes) -> str | None:
    """AbsoluteTime (8 BCD bytes) -> ISO text, or None when the monitor sends "not available" (0xFF...)."""
    if len(raw) < 8 or raw[:7] == b"\xff" * 7:
        return None
    c, y, mo, d, h, mi, s = (bcd(x) for x in raw[:7])
    if min(c, y, mo, d, h, mi, s) < 0:
        return None
    return f"{c * 100 + y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"


def read_string(raw: bytes) -> str:
    """The guide's String: u16 byte length, then UTF-16BE characters (NUL-terminated, padded)."""
    if len(raw) < 2:
        return ""
    n = int.from_bytes(raw[:2], "big")
    text = raw[2 : 2 + n].decode("utf-16-be", errors="replace").split("\x00", 1)[0]
    # the monitor decorates alarm texts with private-use glyphs (its "***" priority marks): drop them
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Co", "Cc", "Cs")).strip()


def write_string(text: str) -> bytes:
    body = (text + "\x00").encode("utf-16-be")
    return len(body).to_bytes(2, "big") + body
