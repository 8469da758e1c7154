"""The sample-index rules (``firmware_bridge.sample_index``) without threads or ptys: 32-bit unwrap,
exact gaps for lost frames, bounded re-base of implausible jumps, backward steps and restarts, and
the promise that no frame is ever discarded or placed over another. The wire decoder and the serial
source both use this class; the decoder's counters are checked here too."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import Decoder, Hello, Samples, encode
from firmware_bridge.sample_index import WRAP, GapReason, SampleIndexTracker

FS = 500.0
DAY = int(86400 * FS)


def test_contiguous_across_the_32_bit_wrap():
    t = SampleIndexTracker(FS)
    index, starts = WRAP - 25, []
    for k in range(5):
        p = t.place(index % WRAP, 10, now_s=k * 0.02)
        assert p.reason is GapReason.CONTIGUOUS and p.gap == 0
        starts.append(p.start)
        index += 10
    assert starts == [WRAP - 25 + 10 * k for k in range(5)]  # unwrapped: past 2**32, no restart


def test_lost_frames_are_an_exact_gap():
    t = SampleIndexTracker(FS)
    t.place(1000, 10, 0.0)
    p = t.place(1050, 10, 0.1)  # four frames of 10 rows never arrived
    assert (p.reason, p.gap, p.start) == (GapReason.MISSING, 40, 1050)


def test_a_day_jump_in_one_read_is_rejected_and_later_frames_keep_their_place():
    """The issue's fault: one CRC-valid frame a day ahead, in the same read as the frames after it."""
    t = SampleIndexTracker(FS)
    t.place(1000, 10, 0.00)
    t.place(1010, 10, 0.02)
    jumped = t.place(1020 + DAY, 10, 0.04)
    assert jumped.reason is GapReason.JUMP and jumped.gap == 0 and jumped.start == 1020
    assert jumped.device_ahead == DAY
    after = [t.place(1030 + 10 * k, 10, 0.04) for k in range(4)]  # same read: same wall time
    assert after[0].reason is GapReason.RESUMED
    assert [p.start for p in after] == [1030, 1040, 1050, 1060] and all(p.gap == 0 for p in after)
    assert all(p.reason is GapReason.CONTIGUOUS for p in after[1:])


def test_a_spurious_extra_frame_shifts_the_stream_instead_of_dropping_data():
    t = SampleIndexTracker(FS)
    t.place(1000, 10, 0.0)
    bogus = t.place(1010 + DAY, 10, 0.02)  # an extra frame (not replacing one) with a wild index
    real = t.place(1010, 10, 0.02)  # the frame that really comes next
    assert bogus.start == 1010 and real.reason is GapReason.RESUMED
    assert real.start == bogus.start + 10 and real.gap == 0  # shifted by one frame, nothing discarded


def test_a_real_leap_of_the_clock_is_confirmed_by_the_frames_after_it():
    t = SampleIndexTracker(FS)
    t.place(0, 10, 0.0)
    leap = t.place(10 + DAY, 10, 0.02)
    nxt = t.place(20 + DAY, 10, 0.04)
    assert leap.reason is GapReason.JUMP and nxt.reason is GapReason.CONTIGUOUS
    assert nxt.start == leap.start + 10 == 20  # the stream did not leap a day


def test_backwards_without_a_new_session_is_rebased_forward():
    t = SampleIndexTracker(FS)
    t.place(50_000, 10, 0.0)
    back = t.place(0, 10, 0.02)
    assert back.reason is GapReason.BACKWARDS and back.start == 50_010 and back.device_ahead == -50_010
    assert t.place(10, 10, 0.04).start == 50_020


def test_restart_gap_is_bounded_by_the_wall_clock():
    t = SampleIndexTracker(FS)
    t.place(123_456, 10, 0.0)
    t.restart()  # HELLO with a new session id: the cart rebooted, its index starts near 0
    p = t.place(7, 10, 4.0)  # heard nothing for 4 s
    assert p.reason is GapReason.RESTART
    assert p.start == 123_466 + p.gap and p.gap == int(4.0 * FS) - 10


def test_a_long_unplug_is_a_plausible_exact_gap_not_a_jump():
    t = SampleIndexTracker(FS, max_gap_s=600.0)
    t.place(0, 10, 0.0)
    back = t.place(10 + int(3600 * FS), 10, 3600.0)  # an hour unplugged, the cart kept counting
    assert back.reason is GapReason.MISSING and back.gap == int(3600 * FS)
    # the same index 20 ms later would be implausible
    t2 = SampleIndexTracker(FS, max_gap_s=600.0)
    t2.place(0, 10, 0.0)
    assert t2.place(10 + int(3600 * FS), 10, 0.02).reason is GapReason.JUMP


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, WRAP - 1), st.integers(1, 40), st.floats(0, 5)), min_size=1, max_size=60), st.booleans())
def test_placements_never_overlap_or_go_back(frames, with_rate):
    t = SampleIndexTracker(FS if with_rate else None)
    now, prev_stop = 0.0, None
    for index, n, dt in frames:
        now += dt
        p = t.place(index, n, now)
        assert p.gap >= 0
        if prev_stop is not None:
            assert p.start == prev_stop + p.gap
        prev_stop = p.start + n


def _samples(index: int, rows: int = 10) -> Samples:
    return Samples(index=index % WRAP, values=np.zeros((rows, 1), np.int32), status=np.zeros(rows, np.uint16))


def test_decoder_counts_a_jump_as_a_jump_not_as_missing_samples():
    hello = Hello(device_id=1, session_id=5, fs=FS, uv_per_lsb=(1.0,), leads=("II",))
    wire = encode(hello) + b"".join(encode(_samples(i)) for i in (0, 10)) + encode(_samples(20 + DAY))
    wire += b"".join(encode(_samples(i)) for i in (30, 40, 70))  # then 20 rows lost before 70
    dec = Decoder()
    frames = dec.feed(wire)
    assert len(frames) == 7
    s = dec.stats
    assert (s.samples_missing, s.index_jumps, s.index_resumed, s.index_restarts) == (20, 1, 1, 0)
    # a new session in HELLO is a restart, wherever its index starts
    dec.feed(encode(Hello(device_id=1, session_id=6, fs=FS, uv_per_lsb=(1.0,), leads=("II",))) + encode(_samples(0)))
    assert dec.stats.index_restarts == 1 and dec.stats.samples_missing == 20
