"""Fuzz: more than 10**6 bytes of valid frames mixed with corruption (seeded, so a failure
reproduces). The decoder never raises, recovers every frame that reached it intact, and the
samples it reports missing are exactly the rows of the frames that were corrupted."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge import Decoder, Pong, Samples, Status, encode

CORRUPTIONS = ("bitflip", "drop_byte", "truncate", "garbage_glued", "insert_byte", "zero_byte")


def build_stream(seed: int, target_bytes: int):
    """Returns (stream bytes, frames in order, intact flags, rows of corrupted SAMPLES frames)."""
    rng = np.random.default_rng(seed)
    parts: list[bytes] = []
    placed: list[tuple[int, int, bool]] = []  # (frame number, offset in stream, bytes unmodified)
    frames: list = []
    index = 0xFFFFFFFF - 50_000  # the running index wraps past 2**32 during the stream
    size = 0
    while size < target_bytes:
        k = len(frames)
        if k % 23 == 22:
            frame = Status(battery_pct=int(rng.integers(0, 101)), dropped_rows=k) if k % 2 else Pong(nonce=k)
        else:
            leads = int(rng.integers(1, 13))
            rows = int(rng.integers(1, 40))
            vals = np.round(rng.normal(0, 1500, size=(rows, leads))).astype(np.int32)
            status = np.where(rng.random(rows) < 0.05, rng.integers(0, 1 << 16, size=rows), 0).astype(np.uint16)
            frame = Samples(index=index & 0xFFFFFFFF, values=vals, status=status)
            index += rows
        frames.append(frame)
        wire = encode(frame)
        first_or_last = k == 0
        r = rng.random()
        if first_or_last or r < 0.75:
            intact = True
        elif r < 0.85:  # a garbage burst of its own before the frame (ends with a delimiter)
            burst = rng.integers(0, 256, size=int(rng.integers(1, 600))).astype(np.uint8).tobytes() + b"\0"
            parts.append(burst)
            size += len(burst)
            intact = True
        else:
            intact = False
            kind = CORRUPTIONS[int(rng.integers(0, len(CORRUPTIONS)))]
            a = bytearray(wire)
            pos = int(rng.integers(0, len(a) - 1))  # never the delimiter itself ...
            if kind == "bitflip":
                a[pos] ^= 1 << int(rng.integers(0, 8))
            elif kind == "drop_byte":
                del a[pos]
            elif kind == "truncate":  # ... except here: the rest, delimiter included, is lost
                del a[pos:]
            elif kind == "garbage_glued":  # garbage with no delimiter, glued in front
                a[0:0] = rng.integers(1, 256, size=int(rng.integers(1, 50))).astype(np.uint8).tobytes()
            elif kind == "insert_byte":
                a.insert(pos, int(rng.integers(1, 256)))
            elif kind == "zero_byte":
                a[pos] = 0
            wire = bytes(a)
        placed.append((k, size, intact))
        parts.append(wire)
        size += len(wire)
    # The final frame must be intact and terminated so nothing is pending at the end.
    tail = Samples(index=index & 0xFFFFFFFF, values=np.zeros((3, 2), np.int32), status=np.zeros(3, np.uint16))
    frames.append(tail)
    placed.append((len(frames) - 1, size, True))
    parts.append(encode(tail))
    stream = b"".join(parts)
    # A frame reaches the decoder intact if its bytes are unmodified and the byte before it is a
    # delimiter (a truncated or garbage-glued predecessor swallows it otherwise).
    ok = [intact and (off == 0 or stream[off - 1] == 0) for (_, off, intact) in placed]
    return stream, frames, ok


@pytest.mark.parametrize("seed,size", [(11, 1_050_000), (12, 300_000)])
def test_decoder_survives_a_megabyte_of_mixed_frames_and_corruption(seed, size):
    stream, frames, ok = build_stream(seed, target_bytes=size)
    assert len(stream) >= size
    expected = [f for f, good in zip(frames, ok) if good]
    lost_rows = sum(f.n_rows for f, good in zip(frames, ok) if not good and isinstance(f, Samples))
    assert sum(not g for g in ok) > 100 and lost_rows > 1000  # the corruption is real
    rng = np.random.default_rng(seed + 100)
    dec = Decoder()
    got = []
    pos = 0
    while pos < len(stream):  # chunks from 1 byte to 64 KiB, as serial reads come
        n = int(rng.choice([1, 7, 64, 1000, 4096, 65536]))
        got.extend(dec.feed(stream[pos : pos + n]))
        pos += n
    assert got == expected  # every intact frame recovered, in order, and nothing else
    assert dec.stats.samples_missing == lost_rows
    assert dec.stats.bad_frames > 0 and dec.stats.frames == len(expected)


def test_byte_at_a_time_equals_64k_at_once_on_corrupted_input():
    stream, _, _ = build_stream(13, target_bytes=60_000)
    big, one = Decoder(), Decoder()
    got_big = [f for i in range(0, len(stream), 65536) for f in big.feed(stream[i : i + 65536])]
    got_one = [f for i in range(len(stream)) for f in one.feed(stream[i : i + 1])]
    assert got_big == got_one and len(got_big) > 50
    assert big.stats.as_dict() == one.stats.as_dict() and big.stats.bad_frames > 5
