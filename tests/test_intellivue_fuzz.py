"""Seeded fuzzing of the IntelliVue decoder, parsers, client session and simulator on mutated real frames.

1. Wire level: > 10**6 bytes of the MP90 captures' frames (re-escaped as on the cable), a third of
   them damaged (bit flips, dropped/inserted bytes, truncation, stray BOF/EOF/escape bytes) with
   garbage between frames, fed in random chunks: no exception, the buffer never above its bound,
   every undamaged frame recovered in order and nothing else accepted.
2. Message level: the frames' user data damaged *inside* valid frames (so the FCS passes and the
   parsers see the damage): the session in every state and the simulator's request handler never
   raise, and the parsers raise nothing but ``PduError``.
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.intellivue.association import AssociationRequest, Abort, ReleaseRequest, encode_association, parse_association
from firmware_bridge.intellivue.capture import read_capture
from firmware_bridge.intellivue.datatypes import PduError
from firmware_bridge.intellivue.framing import Frame, FrameDecoder, encode_frame, escape
from firmware_bridge.intellivue.messages import (
    PollRequest, encode_poll_request, encode_set_priority_list, parse_mds_create, parse_message, parse_poll_reply,
    parse_poll_request, parse_set_request, parse_set_result,
)
from firmware_bridge.intellivue.monitor_sim import MonitorSimulator
from firmware_bridge.intellivue.observations import alarm_entries, numeric_observations, wave_observations, wave_spec
from firmware_bridge.intellivue.session import ClientSession
from helpers.intellivue import capture_path, configured_session

pytestmark = pytest.mark.shared_data


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    a = bytearray(data)
    kind = int(rng.integers(0, 7))
    if kind == 0:  # bit flips
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(a)))
            a[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # dropped bytes
        for _ in range(int(rng.integers(1, 4))):
            if len(a) > 1:
                del a[int(rng.integers(0, len(a)))]
    elif kind == 2:  # inserted bytes
        for _ in range(int(rng.integers(1, 6))):
            a.insert(int(rng.integers(0, len(a) + 1)), int(rng.integers(0, 256)))
    elif kind == 3:  # truncated
        a = a[: int(rng.integers(0, len(a)))]
    elif kind == 4:  # a protocol byte where it does not belong
        a.insert(int(rng.integers(0, len(a) + 1)), int(rng.choice([0xC0, 0xC1, 0x7D])))
    elif kind == 5:  # a run of zeros or 0xFF over a length field or the middle
        i = int(rng.integers(0, len(a)))
        a[i : i + int(rng.integers(1, 8))] = bytes([int(rng.choice([0, 0xFF]))]) * int(rng.integers(1, 8))
    else:  # duplicated span
        i, j = sorted(int(x) for x in rng.integers(0, len(a) + 1, size=2))
        a[j:j] = a[i:j]
    return bytes(a)


def test_wire_fuzz_over_a_million_bytes():
    rng = np.random.default_rng(20240518)
    frames = []
    for name in ("1D-vt", "1A-nsr"):
        cap = read_capture(capture_path(name))
        frames += [b"\xc0" + escape(b) + b"\xc1" for b in cap.bodies]
    stream = bytearray()
    pieces: list[bytes] = []
    damaged = 0
    for wire in frames:
        if rng.random() < 0.05:  # garbage between frames (may hold BOF/EOF/escape bytes)
            pieces.append(rng.integers(0, 256, size=int(rng.integers(1, 400))).astype(np.uint8).tobytes())
        if rng.random() < 1 / 3:
            pieces.append(mutate(rng, wire))
            damaged += 1
        else:
            pieces.append(wire)
    stream = b"".join(pieces)
    print(f"wire fuzz: {len(stream)} bytes, {damaged} of {len(frames)} frames damaged")
    assert len(stream) > 1_000_000
    dec = FrameDecoder()
    got = []
    pos = 0
    while pos < len(stream):
        n = int(rng.integers(1, 4097))
        got += dec.feed(stream[pos : pos + n])
        assert len(dec._buf) <= dec.max_frame
        pos += n
    # what each piece holds on its own: an undamaged frame itself; a damaged one nothing, unless the
    # damage left a whole frame standing (a duplicated span, a stray byte before the BOF)
    want = [f.user_data for piece in pieces for f in FrameDecoder().feed(piece)]
    assert [f.user_data for f in got] == want
    assert len(want) >= len(frames) - damaged
    st = dec.stats
    assert st.bytes_in == len(stream) and st.bad_frames >= 0.7 * damaged


def _payloads(cap) -> list[bytes]:
    requests = [
        encode_association(AssociationRequest()), encode_association(Abort()), encode_association(ReleaseRequest()),
        encode_poll_request(PollRequest(5, 1, 9, 0x0803, True, 8000 * 60)), encode_poll_request(PollRequest(6, 2, 33, 0)),
        encode_set_priority_list(7, [0x00020101, 0x00024BB4]),
    ]
    return list(cap.user_data) + requests


def _parse_everything(data: bytes) -> None:
    """Every parser on the data; anything but PduError is a bug."""
    for fn in (parse_association,):
        try:
            fn(data)
        except PduError:
            pass
    try:
        msg = parse_message(data)
    except PduError:
        return
    for fn in (parse_mds_create, parse_poll_reply, parse_poll_request, parse_set_request, parse_set_result):
        try:
            out = fn(msg)
        except PduError:
            continue
        if fn is parse_poll_reply:
            for _ctx, obs in out.observations:
                for dec in (lambda: wave_observations(obs.handle, obs.attributes), lambda: numeric_observations(obs.handle, obs.attributes),
                            lambda: alarm_entries(obs.attributes), lambda: wave_spec(obs.handle, obs.attributes)):
                    try:
                        dec()
                    except PduError:
                        pass


def test_message_fuzz_reaches_parsers_session_and_simulator():
    rng = np.random.default_rng(7)
    cap = read_capture(capture_path("1D-vt"))
    payloads = _payloads(cap)
    streaming, _ = configured_session(cap)
    fresh = ClientSession()
    fresh.tick(0.0)  # associating
    sim = MonitorSimulator(cap)
    fed = 0
    now = 1.0
    for i in range(4000):
        data = mutate(rng, payloads[int(rng.integers(0, len(payloads)))])
        fed += len(data)
        _parse_everything(data)
        frame = Frame(0x11, 0x01, data)
        for s in (streaming, fresh):
            s.receive(frame, now)  # must not raise
            s.tick(now)
            s.take_outgoing()
        sim.handle_request(data, now)
        sim._out.clear()
        now += 0.01
        if i % 500 == 0:  # through the decoder too, with a valid FCS around the damaged content
            assert FrameDecoder().feed(encode_frame(data))[0].user_data == data
    print(f"message fuzz: {fed} bytes in 4000 damaged messages")
    assert fed > 1_000_000
    assert streaming.stats.bad_pdus > 1000 and streaming.stats.frames_in >= 4000
    assert "bad_requests" in sim.counts
