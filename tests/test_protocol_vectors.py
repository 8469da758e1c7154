"""The committed shared vectors (firmware_bridge/vectors): Python's codec agrees byte for byte with
the C firmware's encoder, in both directions. The C side checks the same files in test_firmware.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import Command, Decoder, Hello, Pong, Samples, Status, encode
from firmware_bridge.frames import T_GET_HELLO, T_PING, T_START, T_STOP

VECTORS = Path(__file__).resolve().parents[1] / "firmware_bridge" / "vectors"
SPEC = json.loads((VECTORS / "vectors.json").read_text())
NAMES = sorted(k for k in SPEC if not k.startswith("_"))


def frame_of(d: dict):
    kind = d["type"]
    if kind == "HELLO":
        return Hello(device_id=d["device_id"], session_id=d["session_id"], fs=d["fs"], uv_per_lsb=tuple(d["uv_per_lsb"]),
                     leads=tuple(d["leads"]), firmware=tuple(d["firmware"]), rows_per_frame=d["rows_per_frame"])
    if kind == "SAMPLES":
        return Samples(index=d["index"], values=np.array(d["values"], dtype=np.int32), status=np.array(d["status"], dtype=np.uint16))
    if kind == "STATUS":
        return Status(**{k: v for k, v in d.items() if k != "type"})
    if kind == "PONG":
        return Pong(nonce=d["nonce"], uptime_ms=d["uptime_ms"])
    kinds = {"GET_HELLO": T_GET_HELLO, "START": T_START, "STOP": T_STOP, "PING": T_PING}
    return Command(kinds[kind], d.get("nonce", 0))


def test_every_vector_has_a_file_and_the_set_covers_every_frame_type():
    assert {SPEC[n]["type"] for n in NAMES} == {"HELLO", "SAMPLES", "STATUS", "PONG", "GET_HELLO", "START", "STOP", "PING"}
    for name in NAMES:
        assert (VECTORS / f"{name}.bin").is_file(), name


@pytest.mark.parametrize("name", NAMES)
def test_python_encoder_writes_the_c_encoders_bytes(name):
    assert encode(frame_of(SPEC[name])) == (VECTORS / f"{name}.bin").read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_python_decoder_reads_the_c_encoders_frame(name):
    wire = (VECTORS / f"{name}.bin").read_bytes()
    dec = Decoder()
    frames = dec.feed(wire)
    assert frames == [frame_of(SPEC[name])]
    assert dec.stats.bad_frames == 0


def test_long_run_vector_really_needs_full_cobs_blocks():
    # 120 rows of 0xFF-heavy bytes: no zero for 600 bytes, so the encoder must emit 0xFF code blocks
    wire = (VECTORS / "samples_long_run.bin").read_bytes()
    assert wire.count(0xFF) > 2 and b"\xff" * 3 in wire


def test_protocol_md_worked_example_is_what_the_encoder_writes():
    doc = (VECTORS.parent / "PROTOCOL.md").read_text()
    frame = Samples(index=1000, values=np.array([[100, -2], [-300, 70000]], np.int32),
                    status=np.array([0, 0x8002], np.uint16))
    wire_line = next(line for line in doc.splitlines() if line.startswith("04 02 02 02 |"))
    assert bytes.fromhex(wire_line.replace("|", " ")) == encode(frame)
    assert Decoder().feed(bytes.fromhex(wire_line.replace("|", " "))) == [frame]
    ping_wire = encode(Command(T_PING, 0x01020304))
    assert f"`{ping_wire.hex(' ')}`" in doc
