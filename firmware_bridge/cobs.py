"""COBS (Consistent Overhead Byte Stuffing; Cheshire & Baker, IEEE/ACM ToN 1999), vectorised with numpy.

Hand-written on purpose: the PyPI ``cobs`` package ships only a source distribution (no aarch64 /
Python 3.10 wheel for the Jetson) and its pure-Python fallback walks the data byte by byte in a
Python loop. ECG samples as 24-bit integers are full of zero bytes (the high byte of every small
positive value), so a byte- or block-wise Python loop runs about once per sample and cannot reach
the decoder's target of 200x real time for 12 leads at 500 Hz. Here both directions are numpy
array operations over whole buffers:

* encode: every zero becomes the distance to the next zero (plus a leading code byte); only runs
  of 254 or more non-zero bytes (rare in ECG) take a short Python path that splits them.
* decode: the chain of code bytes (each code points ``code`` bytes ahead) is followed for all
  frames of a buffer at once by pointer doubling, so the number of numpy passes grows with the
  logarithm of the longest chain, not with the number of zero bytes.
"""

from __future__ import annotations

import numpy as np


class CobsError(ValueError):
    """A COBS block that is not valid (a code pointing past the end of its frame)."""


def encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no trailing delimiter); the result has no zero byte."""
    a = np.frombuffer(data, dtype=np.uint8)
    zeros = np.flatnonzero(a == 0)
    bounds = np.concatenate(([-1], zeros, [a.size]))
    runs = np.diff(bounds)  # each block's code: non-zero run length + 1
    if runs.size and runs.max() < 0xFF:
        out = np.empty(a.size + 1, dtype=np.uint8)
        out[1:] = a
        out[0] = runs[0]
        out[zeros + 1] = runs[1:]
        return out.tobytes()
    return _encode_long_runs(bytes(data))


def _encode_long_runs(data: bytes) -> bytes:
    """The general encoder, for data with runs of >= 254 non-zero bytes that need 0xFF blocks."""
    out = bytearray()
    pieces = data.split(b"\0")
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        while len(piece) >= 0xFE:
            out.append(0xFF)
            out += piece[:0xFE]
            piece = piece[0xFE:]
            if not piece and last:
                return bytes(out)
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def decode(block: bytes) -> bytes:
    """Decode one COBS block (without its delimiter); raises ``CobsError`` if it is not valid."""
    if b"\0" in block:
        raise CobsError("a COBS block contains a zero byte")
    frames = decode_frames(bytes(block) + b"\0")
    if frames[0] is None:
        raise CobsError("a code byte points past the end of the block")
    return frames[0]


# Below this many bytes a Python loop over COBS blocks beats the fixed cost of the numpy passes
# (a few frames, as a serial read at real time returns them).
SMALL_BUFFER = 4096


def _decode_block_loop(block: bytes) -> bytes | None:
    out = bytearray()
    i, n = 0, len(block)
    while i < n:
        code = block[i]
        end = i + code
        if end > n:
            return None
        out += block[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def decode_frames(buf: bytes) -> list[bytes | None]:
    """Decode every zero-terminated frame of ``buf`` (which must end with 0x00) in one pass.

    Returns one entry per non-empty frame, in order: the decoded bytes, or ``None`` where the
    frame is not valid COBS. Empty frames (consecutive delimiters) are skipped.
    """
    if len(buf) < SMALL_BUFFER:
        if not buf or buf[-1] != 0:
            raise ValueError("decode_frames needs a buffer that ends with a 0x00 delimiter")
        return [_decode_block_loop(b) for b in bytes(buf).split(b"\0")[:-1] if b]
    a = np.frombuffer(buf, dtype=np.uint8)
    n = a.size
    if n == 0 or a[-1] != 0:
        raise ValueError("decode_frames needs a buffer that ends with a 0x00 delimiter")
    delim = np.flatnonzero(a == 0)
    starts_all = np.concatenate(([0], delim[:-1] + 1))
    nonempty = delim > starts_all
    starts, ends = starts_all[nonempty], delim[nonempty]
    if starts.size == 0:
        return []
    # For every position, the delimiter that ends its frame.
    end_of = np.repeat(delim, np.diff(np.concatenate(([0], delim + 1))))
    pos = np.arange(n, dtype=np.int64)
    target = pos + a
    bad_jump = target > end_of  # a code that points past its frame's end
    nxt = np.minimum(target, end_of)  # delimiters point at themselves: the chain's sink
    # Mark the code-byte chain of every frame: after k rounds, every node within 2**k steps of a
    # frame start is marked (J holds nxt applied 2**k times).
    on = np.zeros(n, dtype=bool)
    on[starts] = True
    jump = nxt
    while True:
        marked = np.flatnonzero(on)
        reach = jump[marked]
        fresh = ~on[reach]
        if not fresh.any():
            break
        on[reach[fresh]] = True
        jump = jump[jump]
    codes = np.flatnonzero(on & (a != 0))
    frame_of_code = np.searchsorted(ends, codes)
    invalid = np.zeros(starts.size, dtype=bool)
    invalid[frame_of_code[bad_jump[codes]]] = True
    # Each code byte after the first stands where a zero was, unless the previous code was 0xFF
    # (a full block with no zero after it); the first code and the delimiters are dropped.
    out = a.copy()
    keep = np.ones(n, dtype=bool)
    keep[delim] = False
    keep[starts] = False
    nxt_code = target[codes]
    inside = nxt_code < end_of[codes]
    full = a[codes] == 0xFF
    out[nxt_code[inside & ~full]] = 0
    keep[nxt_code[inside & full]] = False
    kept_before = np.concatenate(([0], np.cumsum(keep)))
    data = out[keep].tobytes()
    lo = kept_before[starts]
    hi = kept_before[ends]
    return [None if bad else data[s:e] for s, e, bad in zip(lo.tolist(), hi.tolist(), invalid.tolist())]
