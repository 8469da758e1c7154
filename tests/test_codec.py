"""The Python wire codec: COBS, CRC, typed frames, and the incremental decoder's promises
(any chunking gives the same frames; bad bytes are counted and skipped, never raised)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import Command, Decoder, Hello, Pong, Samples, Status, cobs, encode
from firmware_bridge.codec import MAX_ENCODED, crc32
from firmware_bridge.frames import T_PING, T_START, FrameError, pack_samples, unpack_payload


def some_frames(rng: np.random.Generator, n: int, leads: int = 12) -> list:
    names = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")[:leads]
    frames: list = [Hello(device_id=1, session_id=2, fs=500.0, uv_per_lsb=(0.5,) * leads, leads=names)]
    index = 4_294_967_000  # crosses the 32-bit wrap on the way
    for k in range(n):
        rows = int(rng.integers(1, 30))
        vals = rng.normal(0, 2000, size=(rows, leads)).astype(np.int32)
        st_ = np.where(rng.random(rows) < 0.1, rng.integers(0, 1 << 16, size=rows), 0).astype(np.uint16)
        frames.append(Samples(index=index & 0xFFFFFFFF, values=vals, status=st_))
        index += rows
        if k % 17 == 0:
            frames.append(Status(battery_pct=50, errors=k, uptime_ms=k * 1000))
    return frames


def test_crc_is_the_standard_crc32():
    assert crc32(b"123456789") == 0xCBF43926


def test_one_byte_at_a_time_and_64k_at_once_give_the_same_frames():
    rng = np.random.default_rng(1)
    frames = some_frames(rng, 300)
    wire = b"".join(encode(f) for f in frames)
    assert len(wire) > 100_000
    big = Decoder()
    got_big = [f for i in range(0, len(wire), 65536) for f in big.feed(wire[i : i + 65536])]
    one = Decoder()
    got_one = [f for i in range(len(wire)) for f in one.feed(wire[i : i + 1])]
    assert got_big == frames and got_one == frames
    assert big.stats.samples_missing == 0 and big.stats.bad_frames == 0
    assert big.stats.as_dict() == one.stats.as_dict()


def test_bad_input_is_counted_and_the_decoder_resynchronises():
    good = encode(Command(T_PING, 7))
    crc_bad = bytearray(good)
    crc_bad[2] ^= 0x10
    truncated = good[:-4]  # no delimiter: merges with the next bytes, which then fail too
    not_cobs = b"\x09\x01\x02\x00"
    layout_bad = cobs.encode(b"\x83\x01" + crc32(b"\x83\x01").to_bytes(4, "little")) + b"\0"
    garbage = bytes(range(1, 200)) * 30 + b"\0"  # longer than any frame
    dec = Decoder()
    frames = dec.feed(bytes(crc_bad) + good + not_cobs + layout_bad + good + truncated + good + garbage + good)
    assert frames == [Command(T_PING, 7)] * 3
    s = dec.stats
    # crc_bad, not_cobs, layout_bad, truncated (merged with the good frame after it), garbage
    assert s.bad_frames == 5
    assert s.cobs_errors >= 1 and s.crc_errors >= 1 and s.layout_errors == 1 and s.oversize == 1
    assert s.bytes_discarded == len(garbage)
    one = Decoder()
    wire = bytes(crc_bad) + good + not_cobs + layout_bad + good + truncated + good + garbage + good
    assert [f for i in range(len(wire)) for f in one.feed(wire[i : i + 1])] == frames
    assert one.stats.as_dict() == s.as_dict()


def test_oversize_runs_are_discarded_across_chunks():
    dec = Decoder()
    for _ in range(10):
        assert dec.feed(b"\x11" * 1000) == []
    assert dec.stats.oversize == 1
    assert dec.feed(b"\x22\0" + encode(Pong(3))) == [Pong(3)]
    assert dec.stats.bytes_discarded == 10_000 + 2 and len(dec._pending) == 0


def test_frame_layout_errors_name_the_problem():
    with pytest.raises(FrameError, match="SAMPLES: 10 bytes"):
        unpack_payload(pack_samples(0, np.zeros((2, 3), np.int32))[:10])
    with pytest.raises(FrameError, match="24-bit"):
        pack_samples(0, np.array([[1 << 23]]))
    with pytest.raises(FrameError, match="unknown frame type 0x7f"):
        unpack_payload(b"\x7f")
    with pytest.raises(FrameError, match="lead name"):
        encode(Hello(device_id=0, session_id=0, fs=1.0, uv_per_lsb=(1.0,), leads=("TOO-LONG-NAME",)))


def test_samples_sign_extension_and_status_cross_intact():
    vals = np.array([[-(1 << 23), (1 << 23) - 1, -1, 0, 1, 255, 256, -256, 65535, -65536]], dtype=np.int32)
    f = Samples(index=0xFFFFFFFF, values=vals, status=np.array([0x8123], np.uint16))
    assert Decoder().feed(encode(f)) == [f]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_cobs_round_trips_any_bytes(data):
    enc = cobs.encode(data)
    assert b"\0" not in enc
    assert cobs.decode(enc) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=8), st.lists(st.integers(1, 5000), min_size=1, max_size=6))
def test_decoder_never_raises_on_arbitrary_bytes_in_any_chunking(chunks, cuts):
    data = b"".join(chunks)
    dec = Decoder()
    pos, k = 0, 0
    while pos < len(data):
        n = cuts[k % len(cuts)]
        dec.feed(data[pos : pos + n])
        pos, k = pos + n, k + 1
    assert dec.stats.bytes_in == len(data)


def test_max_encoded_bounds_the_largest_legal_frame():
    vals = np.full(((4096 - 8) // 50, 16), -1, dtype=np.int32)
    wire = encode(Samples(0, vals, np.full(vals.shape[0], 0xFFFF, np.uint16)))
    assert len(wire) <= MAX_ENCODED
    assert Decoder().feed(wire)[0].n_rows == vals.shape[0]


def test_commands_round_trip():
    frames = [Command(T_START), Command(T_PING, 0xFFFFFFFF), Pong(1, 2), Status()]
    assert Decoder().feed(b"".join(encode(f) for f in frames)) == frames


def test_vectorised_and_loop_cobs_paths_agree(monkeypatch):
    rng = np.random.default_rng(5)
    pieces = []
    for _ in range(300):
        n = int(rng.integers(0, 700))
        data = np.where(rng.random(n) < rng.random(), 0, rng.integers(1, 256, n)).astype(np.uint8).tobytes()
        pieces.append(cobs.encode(data) + b"\0")
    pieces.insert(7, b"\x09\x01\x02\0")  # a code past the end of its frame
    pieces.insert(100, b"\xff" + b"\x01" * 200 + b"\0")  # a full block cut short
    buf = b"".join(pieces)
    assert len(buf) > cobs.SMALL_BUFFER
    vectorised = cobs.decode_frames(buf)
    monkeypatch.setattr(cobs, "SMALL_BUFFER", len(buf) + 1)
    looped = cobs.decode_frames(buf)
    assert vectorised == looped
    assert vectorised[7] is None and vectorised[100] is None and sum(v is None for v in vectorised) == 2
