"""Wire codec: ``encode(frame) -> bytes`` and the incremental, never-raising ``Decoder``.

A frame on the wire is ``COBS(payload || CRC32_LE(payload)) || 0x00`` (see PROTOCOL.md). The
decoder is fed whatever chunks the serial port returns (one byte or 64 KiB: the same frames come
out), keeps the unfinished tail, and turns bad input into counters, never exceptions: garbage,
truncated frames, COBS errors, CRC failures and layout errors are counted and skipped, and it
resynchronises at the next 0x00.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields

import numpy as np

from firmware_bridge import cobs
from firmware_bridge.sample_index import GapReason, SampleIndexTracker
from firmware_bridge.frames import (
    MAX_PAYLOAD,
    T_SAMPLES,
    Frame,
    FrameError,
    Hello,
    Samples,
    pack_payload,
    unpack_payload,
    unpack_samples_many,
)

# Longest encoded frame (payload + CRC + COBS overhead) before the decoder calls it garbage.
MAX_ENCODED = MAX_PAYLOAD + 4 + (MAX_PAYLOAD + 4) // 254 + 2


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (the IEEE 802.3 / zlib CRC), as the firmware's table-driven one computes it."""
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_payload(payload: bytes) -> bytes:
    """The wire bytes of one payload: CRC appended, COBS-encoded, 0x00-terminated."""
    return cobs.encode(payload + crc32(payload).to_bytes(4, "little")) + b"\0"


def encode(frame: Frame) -> bytes:
    """The wire bytes of one typed frame."""
    return encode_payload(pack_payload(frame))


@dataclass
class DecoderStats:
    """What the decoder saw; every byte that did not become a frame is accounted for here."""

    bytes_in: int = 0
    frames: int = 0
    cobs_errors: int = 0
    crc_errors: int = 0  # includes frames too short to hold a CRC (truncated)
    layout_errors: int = 0  # CRC fine but the payload does not fit its type's layout
    oversize: int = 0  # runs of bytes longer than any frame without a delimiter (garbage)
    bytes_discarded: int = 0
    samples_missing: int = 0  # rows skipped by the SAMPLES index (frames lost on the way)
    index_restarts: int = 0  # SAMPLES index went backwards or a new HELLO session began (device restarted)
    index_jumps: int = 0  # SAMPLES index leapt implausibly far ahead: not counted as missing (see sample_index)
    index_resumed: int = 0  # the sequence from before a jump or backward step continued

    @property
    def bad_frames(self) -> int:
        return self.cobs_errors + self.crc_errors + self.layout_errors + self.oversize

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Decoder:
    """Incremental frame decoder: ``feed(chunk)`` returns the frames completed by that chunk.

    It also follows the SAMPLES running index with ``SampleIndexTracker`` (the same rules the
    serial source places blocks by) and counts rows that never arrived in
    ``stats.samples_missing``, so a consumer sees lost frames as a number of samples; an
    implausible jump or a restart is counted as such, never as millions of missing samples.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED) -> None:
        self.max_encoded = max_encoded
        self.stats = DecoderStats()
        self._pending = bytearray()
        self._discarding = False  # inside an over-long run: drop bytes until the next delimiter
        self._index = SampleIndexTracker()
        self._session: int | None = None

    def reset_index(self) -> None:
        """Forget the expected SAMPLES index (after a reconnect the caller accounts for the gap)."""
        self._index = SampleIndexTracker(self._index.fs)

    def feed(self, chunk: bytes) -> list[Frame]:
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)  # bytearray / memoryview from a reader
        self.stats.bytes_in += len(chunk)
        last = chunk.rfind(b"\0")
        if last < 0:
            self._append_partial(chunk)
            return []
        head = chunk[: last + 1]
        if self._discarding:
            first = head.find(b"\0")
            self.stats.bytes_discarded += first + 1
            head = head[first + 1 :]
            self._discarding = False
        block = bytes(self._pending) + head if self._pending else head
        self._pending = bytearray()
        frames = self._decode_block(block) if block else []
        self._append_partial(chunk[last + 1 :])
        return frames

    def _append_partial(self, tail: bytes) -> None:
        if not tail:
            return
        if self._discarding:
            self.stats.bytes_discarded += len(tail)
            return
        self._pending += tail
        if len(self._pending) > self.max_encoded:
            self.stats.oversize += 1
            self.stats.bytes_discarded += len(self._pending)
            self._pending = bytearray()
            self._discarding = True

    def _drop_oversize(self, block: bytes) -> bytes:
        """Remove pieces longer than any frame, counted as the byte-wise path would count them."""
        a = np.frombuffer(block, dtype=np.uint8)
        delim = np.flatnonzero(a == 0)
        starts = np.concatenate(([0], delim[:-1] + 1))
        long = np.flatnonzero(delim - starts > self.max_encoded)
        if long.size == 0:
            return block
        keep, pos = [], 0
        for k in long.tolist():
            s, e = int(starts[k]), int(delim[k])
            keep.append(block[pos:s])
            pos = e + 1
            self.stats.oversize += 1
            self.stats.bytes_discarded += e - s + 1
        keep.append(block[pos:])
        return b"".join(keep)

    def _decode_block(self, block: bytes) -> list[Frame]:
        out: list[Frame] = []
        stats = self.stats
        block = self._drop_oversize(block)
        if not block:
            return out
        payloads: list[bytes] = []
        for raw in cobs.decode_frames(block):
            if raw is None:
                stats.cobs_errors += 1
            elif len(raw) < 5 or zlib.crc32(raw[:-4]) & 0xFFFFFFFF != int.from_bytes(raw[-4:], "little"):
                stats.crc_errors += 1
            else:
                payloads.append(raw[:-4])
        samples_at = [k for k, p in enumerate(payloads) if p[0] == T_SAMPLES]
        batch = iter(unpack_samples_many([payloads[k] for k in samples_at]))
        for payload in payloads:
            if payload[0] == T_SAMPLES:
                frame = next(batch)
                if isinstance(frame, FrameError):
                    stats.layout_errors += 1
                    continue
                self._track_index(frame)
            else:
                try:
                    frame = unpack_payload(payload)
                except FrameError:
                    stats.layout_errors += 1
                    continue
                if isinstance(frame, Hello):
                    self._on_hello(frame)
            stats.frames += 1
            out.append(frame)
        return out

    def _on_hello(self, hello: Hello) -> None:
        self._index.set_rate(hello.fs)
        if self._session is not None and hello.session_id != self._session:
            self._index.restart()
        self._session = hello.session_id

    def _track_index(self, frame: Samples) -> None:
        placed = self._index.place(frame.index, frame.n_rows)
        if placed.reason is GapReason.CONTIGUOUS:
            return
        if placed.reason is GapReason.MISSING:
            self.stats.samples_missing += placed.gap
        elif placed.reason in (GapReason.BACKWARDS, GapReason.RESTART):
            self.stats.index_restarts += 1
        elif placed.reason is GapReason.JUMP:
            self.stats.index_jumps += 1
        elif placed.reason is GapReason.RESUMED:
            self.stats.index_resumed += 1
            self.stats.samples_missing += placed.gap  # rows lost around the bad index
