"""The MIB/RS232 transport of the IntelliVue Data Export protocol: frames, transparency, FCS.

On the wire (Data Export Interface Programming Guide, "RS232/MIB transport")::

    0xC0 | protocol_id 0x11 | msg_type 0x01 | length (u16 BE) | user data | FCS (u16, low byte first) | 0xC1

Inside a frame (between BOF 0xC0 and EOF 0xC1) the bytes 0xC0, 0xC1 and 0x7D travel as 0x7D
followed by the byte XOR 0x20 ("transparency"). The FCS is CRC-16/X.25 (reflected polynomial
0x8408, initial 0xFFFF, final complement) over header and user data; a receiver may run the CRC
over the FCS too and expect the residue 0xF0B8. Verified on all ~7,100 frames of the MP90
captures in ``../shared/monitors/intellivue-mp90`` (every FCS valid).

``FrameDecoder.feed(chunk)`` is incremental and never raises: a BOF inside a frame aborts the
partial frame (the sender started over), an EOF right after an escape byte aborts it too, a
frame longer than any legal one is discarded and the decoder hunts for the next BOF; every byte
that did not become a frame is counted in ``FrameStats``. Its buffer is bounded by
``max_frame`` (escaped bytes), so no input can make it grow.

The CRC is ten lines here rather than a dependency: no CRC package on PyPI is both
X.25-specific and shipped as aarch64 wheels, and at 115200 baud the monitor sends ~3 KB/s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

BOF = 0xC0
EOF = 0xC1
ESC = 0x7D
ESC_XOR = 0x20
PROTOCOL_ID = 0x11  # Data Export protocol over the MIB/RS232 transport
MSG_TYPE = 0x01  # "Data Export command" (association and data messages alike)
FCS_RESIDUE = 0xF0B8
HEADER_LEN = 4  # protocol id, message type, length
# The guide caps the negotiable MTU on MIB/RS232 at 1000 bytes of command data; a frame adds the
# session/remote-operation headers, its own header and the FCS. Anything longer is garbage.
MAX_USER_DATA = 2048
MAX_ESCAPED = 2 * (HEADER_LEN + MAX_USER_DATA + 2)


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        x = i
        for _ in range(8):
            x = (x >> 1) ^ 0x8408 if x & 1 else x >> 1
        table.append(x)
    return tuple(table)


_TABLE = _crc_table()


def crc16_x25(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/X.25 of ``data`` (before the final complement when chained: pass the running value)."""
    table = _TABLE
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def fcs(data: bytes | bytearray) -> bytes:
    """The two FCS bytes appended to ``data`` (complemented CRC, low byte first)."""
    return ((~crc16_x25(data)) & 0xFFFF).to_bytes(2, "little")


def fcs_ok(body: bytes | bytearray) -> bool:
    """True if ``body`` (header, user data, FCS) checks: the CRC over all of it leaves the residue."""
    return len(body) >= 2 and crc16_x25(body) == FCS_RESIDUE


def escape(body: bytes) -> bytes:
    """Transparency: 0x7D, 0xC0, 0xC1 -> 0x7D, byte ^ 0x20 (0x7D first, so new escapes stay as they are)."""
    return body.replace(b"\x7d", b"\x7d\x5d").replace(b"\xc0", b"\x7d\xe0").replace(b"\xc1", b"\x7d\xe1")


def unescape(raw: bytes) -> bytes | None:
    """Undo transparency; ``None`` if an escape byte has nothing after it (a torn frame)."""
    if b"\x7d" not in raw:
        return raw
    parts = raw.split(b"\x7d")
    out = bytearray(parts[0])
    for part in parts[1:]:
        if not part:
            return None  # 0x7D at the end, or 0x7D 0x7D: not a legal escape
        out.append(part[0] ^ ESC_XOR)
        out += part[1:]
    return bytes(out)


def encode_frame(user_data: bytes, protocol_id: int = PROTOCOL_ID, msg_type: int = MSG_TYPE) -> bytes:
    """The wire bytes of one message: header, FCS, transparency, BOF/EOF."""
    if len(user_data) > 0xFFFF:
        raise ValueError(f"user data of {len(user_data)} bytes does not fit a frame")
    body = bytes((protocol_id, msg_type)) + len(user_data).to_bytes(2, "big") + user_data
    return b"\xc0" + escape(body + fcs(body)) + b"\xc1"


@dataclass(frozen=True)
class Frame:
    """One checked frame: its header fields and the user data (an association or data export PDU)."""

    protocol_id: int
    msg_type: int
    user_data: bytes


@dataclass
class FrameStats:
    """What the decoder saw; every byte that did not become a frame is accounted for here."""

    bytes_in: int = 0
    frames: int = 0
    fcs_errors: int = 0
    length_errors: int = 0  # length field disagrees with the bytes between BOF and EOF
    escape_errors: int = 0  # 0x7D with nothing legal after it
    aborted: int = 0  # BOF inside a frame: the partial frame was abandoned
    oversize: int = 0  # longer than any legal frame: discarded up to the next BOF
    foreign: int = 0  # FCS fine but not the Data Export protocol id / message type
    bytes_discarded: int = 0  # outside frames, or in frames that failed

    @property
    def bad_frames(self) -> int:
        return self.fcs_errors + self.length_errors + self.escape_errors + self.aborted + self.oversize + self.foreign

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_DELIM = re.compile(b"[\xc0\xc1]")


class FrameDecoder:
    """Incremental, never-raising frame decoder: ``feed(chunk) -> [Frame]``.

    ``max_frame`` bounds the escaped bytes held for one unfinished frame (the whole state of the
    decoder), so memory stays fixed whatever arrives.
    """

    def __init__(self, max_frame: int = MAX_ESCAPED) -> None:
        self.max_frame = max_frame
        self.stats = FrameStats()
        self._buf = bytearray()
        self._in_frame = False

    def reset(self) -> None:
        """Forget a partial frame (a reopened port starts clean)."""
        if self._in_frame:
            self.stats.bytes_discarded += len(self._buf) + 1
        self._buf.clear()
        self._in_frame = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        data = bytes(data)
        st = self.stats
        st.bytes_in += len(data)
        out: list[Frame] = []
        pos, n = 0, len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(b"\xc0", pos)
                if start < 0:
                    st.bytes_discarded += n - pos
                    break
                st.bytes_discarded += start - pos
                self._in_frame = True
                self._buf.clear()
                pos = start + 1
                continue
            m = _DELIM.search(data, pos)
            end = m.start() if m else n
            if len(self._buf) + (end - pos) > self.max_frame:
                st.oversize += 1
                st.bytes_discarded += len(self._buf) + 1 + (end - pos)
                self._buf.clear()
                self._in_frame = False
                pos = end  # the delimiter (if any) is looked at again: a BOF starts the next frame
                if m and data[end] == EOF:
                    st.bytes_discarded += 1
                    pos = end + 1
                continue
            self._buf += data[pos:end]
            if m is None:
                break
            if data[end] == BOF:  # a new frame began before this one ended: abandon it
                st.aborted += 1
                st.bytes_discarded += len(self._buf) + 1
                self._buf.clear()
                pos = end + 1
                continue
            frame = self._finish(bytes(self._buf))
            if frame is not None:
                out.append(frame)
            self._buf.clear()
            self._in_frame = False
            pos = end + 1
        return out

    def _finish(self, raw: bytes) -> Frame | None:
        st = self.stats
        body = unescape(raw)
        if body is None:
            st.escape_errors += 1
            st.bytes_discarded += len(raw) + 2
            return None
        if len(body) < HEADER_LEN + 2 or int.from_bytes(body[2:4], "big") != len(body) - HEADER_LEN - 2:
            # a damaged frame usually fails both checks; call it a length error only if its FCS holds
            if fcs_ok(body):
                st.length_errors += 1
            else:
                st.fcs_errors += 1
            st.bytes_discarded += len(raw) + 2
            return None
        if not fcs_ok(body):
            st.fcs_errors += 1
            st.bytes_discarded += len(raw) + 2
            return None
        if body[0] != PROTOCOL_ID or body[1] != MSG_TYPE:
            st.foreign += 1
            st.bytes_discarded += len(raw) + 2
            return None
        st.frames += 1
        return Frame(body[0], body[1], body[HEADER_LEN:-2])


def split_frames(wire: bytes) -> list[Frame]:
    """All frames in a byte string (a convenience over ``FrameDecoder``)."""
    return FrameDecoder().feed(wire)
