"""The cart wire: protocol frames, COBS + CRC-32 codec, reference firmware (C), cart simulator.

``Decoder().feed(chunk) -> list[Frame]`` and ``encode(frame) -> bytes`` are the whole codec;
``firmware_bridge/PROTOCOL.md`` is the byte-by-byte specification both sides follow.
"""

from firmware_bridge.codec import Decoder, DecoderStats, crc32, encode, encode_payload
from firmware_bridge.frames import (
    ELECTRODE_BIT,
    ELECTRODES,
    PACER_BIT,
    PROTOCOL_VERSION,
    T_GET_HELLO,
    T_PING,
    T_START,
    T_STOP,
    Command,
    Frame,
    FrameError,
    Hello,
    Pong,
    Samples,
    Status,
    lead_electrode_mask,
    pack_payload,
    unpack_payload,
)

__all__ = [
    "Decoder", "DecoderStats", "crc32", "encode", "encode_payload",
    "ELECTRODE_BIT", "ELECTRODES", "PACER_BIT", "PROTOCOL_VERSION",
    "T_GET_HELLO", "T_PING", "T_START", "T_STOP",
    "Command", "Frame", "FrameError", "Hello", "Pong", "Samples", "Status",
    "lead_electrode_mask", "pack_payload", "unpack_payload",
]
