"""Philips IntelliVue Data Export over the MIB/RS232 port: the monitors hospitals already own.

One module per concern, following the Data Export Interface Programming Guide:

- ``framing``: 0xC0/0xC1 frames, 0x7D transparency, CRC-16/X.25 FCS, the never-raising decoder;
- ``datatypes``: the guide's basic types (FLOATType, AttributeList, strings) and a bounds-checked reader;
- ``association``: association request/response/refuse, release and abort;
- ``messages``: remote operations, MDS Create Event, polls and their replies, the priority-list Set;
- ``observations``: wave samples and their scale, numerics, alarms as typed values;
- ``session``: the client protocol as a sans-I/O state machine (``edge_ecg.stream.intellivue_source`` runs it on a port);
- ``capture``: the MP90 captures and their PERSEUS cross-check files;
- ``monitor_sim``: an MP90 replaying a capture on a pseudo-terminal (``edge-ecg monitor-sim``).
"""

from firmware_bridge.intellivue.framing import Frame, FrameDecoder, FrameStats, crc16_x25, encode_frame
from firmware_bridge.intellivue.session import ClientConfig, ClientSession, SessionState

__all__ = ["Frame", "FrameDecoder", "FrameStats", "crc16_x25", "encode_frame", "ClientConfig", "ClientSession", "SessionState"]
