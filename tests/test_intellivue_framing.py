"""IntelliVue MIB/RS232 framing and association messages: FCS, transparency, aborted and oversize
frames, split reads, and the association envelopes' length fields (no shared data needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware_bridge.intellivue.association import (
    Abort,
    AssociationRefuse,
    AssociationRequest,
    AssociationResponse,
    ReleaseRequest,
    ReleaseResponse,
    accept_for,
    association_timeout_s,
    encode_association,
    parse_association,
    POLL_EXT_PERIOD_RTSA,
    SYST_SERVER,
)
from firmware_bridge.intellivue.datatypes import PduError, decode_float, encode_float, read_string, write_string
from firmware_bridge.intellivue.framing import (
    FCS_RESIDUE,
    FrameDecoder,
    crc16_x25,
    encode_frame,
    escape,
    fcs,
    fcs_ok,
    unescape,
)


def test_crc_is_crc16_x25():
    # the catalogue check value of CRC-16/X.25 ("123456789"), and the residue over data + FCS
    assert (~crc16_x25(b"123456789")) & 0xFFFF == 0x906E
    body = b"\x11\x01\x00\x03abc"
    assert crc16_x25(body + fcs(body)) == FCS_RESIDUE
    assert fcs_ok(body + fcs(body))
    assert not fcs_ok(body + bytes([fcs(body)[0] ^ 1, fcs(body)[1]]))


def test_transparency_round_trip_of_every_special_byte():
    data = bytes(range(256)) + b"\x7d\x7d\xc0\xc1\x7d\xe0\x7d\x5d"
    esc = escape(data)
    assert b"\xc0" not in esc and b"\xc1" not in esc
    assert unescape(esc) == data
    assert unescape(b"ab\x7d") is None  # an escape with nothing after it
    assert unescape(b"a\x7d\x7db") is None


def test_frames_decode_from_any_split_of_the_stream():
    rng = np.random.default_rng(3)
    payloads = [bytes(rng.integers(0, 256, size=int(n)).astype(np.uint8)) for n in rng.integers(0, 600, size=40)]
    payloads.append(b"\xc0\xc1\x7d" * 50)
    wire = b"".join(encode_frame(p) for p in payloads)
    for sizes in ([1], [2, 3], [7, 200, 1], [len(wire)]):
        dec = FrameDecoder()
        got, pos, k = [], 0, 0
        while pos < len(wire):
            n = sizes[k % len(sizes)]
            got += dec.feed(wire[pos : pos + n])
            pos += n
            k += 1
        assert [f.user_data for f in got] == payloads
        assert dec.stats.bad_frames == 0 and dec.stats.bytes_discarded == 0


def test_aborted_torn_foreign_and_corrupt_frames_are_counted_not_raised():
    good = encode_frame(b"hello")
    torn = encode_frame(b"lost in the middle")[:9]  # a BOF arrives before its EOF: aborted
    bad_escape = b"\xc0\x11\x01\x00\x01a\x7d\xc1"
    foreign = b"\xc0" + escape(b"\x12\x01\x00\x01z" + fcs(b"\x12\x01\x00\x01z")) + b"\xc1"
    corrupt = bytearray(encode_frame(b"flipped"))
    corrupt[6] ^= 0x04
    wrong_len = b"\xc0" + escape(b"\x11\x01\x00\x09abc" + fcs(b"\x11\x01\x00\x09abc")) + b"\xc1"
    dec = FrameDecoder()
    out = dec.feed(b"noise" + torn + good + bad_escape + foreign + bytes(corrupt) + wrong_len + good)
    assert [f.user_data for f in out] == [b"hello", b"hello"]
    st = dec.stats
    assert (st.aborted, st.escape_errors, st.foreign, st.fcs_errors, st.length_errors) == (1, 1, 1, 1, 1)
    assert st.bytes_discarded > 0


def test_buffer_is_bounded_by_the_longest_legal_frame():
    dec = FrameDecoder(max_frame=1000)
    dec.feed(b"\xc0" + b"x" * 5000)  # a BOF and then garbage without end
    assert len(dec._buf) <= 1000 and dec.stats.oversize == 1
    assert [f.user_data for f in dec.feed(b"yyy" + encode_frame(b"ok"))] == [b"ok"]


def test_float_type():
    assert decode_float(0x00000050) == 80.0
    assert decode_float(0xFF0003E8) == pytest.approx(100.0)
    assert decode_float(0xFC00A000) == pytest.approx(40960 * 1e-4)
    assert math.isnan(decode_float(0x007FFFFF)) and math.isnan(decode_float(0x00800000))
    assert decode_float(0x007FFFFE) == math.inf and decode_float(0x00800002) == -math.inf
    for v in (-40.96, 40.955, 0.0, 1.0, 123456.0, -0.005):
        assert decode_float(encode_float(v)) == pytest.approx(v)
    assert math.isnan(decode_float(encode_float(float("nan"))))


def test_strings_are_utf16_and_lose_the_monitors_private_glyphs():
    assert read_string(write_string("SpO\u2082 LOW")) == "SpO\u2082 LOW"
    assert read_string(write_string("\ue40d\ue40d VTACH")) == "VTACH"


@pytest.mark.parametrize("msg", [AssociationRequest(), ReleaseRequest(), ReleaseResponse(), Abort(), AssociationRefuse()])
def test_association_messages_round_trip_with_consistent_lengths(msg):
    data = encode_association(msg)
    assert parse_association(data) == msg
    # session length indicator = everything after it
    li = data[1]
    assert li == len(data) - 2
    if isinstance(msg, AssociationRequest):
        at = data.index(b"\xc1", 2)
        assert data[at + 1] == len(data) - at - 2  # presentation length (< 255 here)


def test_the_monitors_response_follows_the_guides_negotiation():
    req = AssociationRequest()
    resp = accept_for(req, mtu=800)
    assert isinstance(parse_association(encode_association(resp)), AssociationResponse)
    info = parse_association(encode_association(resp)).user_info
    assert info.system_type == SYST_SERVER
    assert info.profile.max_mtu_rx == 800 and info.profile.max_mtu_tx == 800
    assert info.profile.ext_options & POLL_EXT_PERIOD_RTSA
    assert association_timeout_s(8000) == 10.0 and association_timeout_s(8000 * 10) == 30.0 and association_timeout_s(8000 * 60) == 130.0


def test_association_parser_rejects_garbage_with_pdu_error():
    for data in (b"", b"\x0d", b"\x0d\xff\x01\x00", b"\x0e\x05\x01\x02\x03\x04\x05", b"\x42\x00"):
        with pytest.raises(PduError):
            parse_association(data)
