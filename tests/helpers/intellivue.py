"""What the IntelliVue tests share: where the MP90 captures are, and a ClientSession walked through
association and configuration on a capture's own bytes (no tests here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED

MONITORS = SHARED / "monitors" / "intellivue-mp90"
CAPTURES = ("1A-nsr", "1B-nsr-spo2-85", "1C-nsr-no-pleth", "1D-vt", "1E-vf")


def capture_path(name: str) -> Path:
    path = MONITORS / f"{name}.data.txt"
    if not path.is_file():
        pytest.skip(f"IntelliVue captures not present at {MONITORS} (../shared/monitors beside the checkout)")
    return path


def capture_waves(name: str) -> tuple[int, dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(origin relative time, {rt: ECG I counts}, {rt: pleth counts}) straight from the capture."""
    from firmware_bridge.intellivue.capture import read_capture
    from firmware_bridge.intellivue.messages import parse_message, parse_poll_reply
    from firmware_bridge.intellivue.observations import wave_observations

    cap = read_capture(capture_path(name))
    ecg, pleth = {}, {}
    for ud in cap.user_data:
        msg = parse_message(ud)
        if msg.command_type != 7:
            continue
        reply = parse_poll_reply(msg)
        for _ctx, obs in reply.observations:
            for w in wave_observations(obs.handle, obs.attributes):
                (ecg if w.physio_id == 0x0101 else pleth)[reply.rel_time] = w.samples
    return min(ecg), ecg, pleth


def configured_session(capture):
    """A ClientSession that has associated and configured against this capture: the association
    response is the simulator's (built by the guide's rules), the MDS Create and the Set result are
    the capture's bytes, the static attributes the simulator's. Returns (session, events so far)."""
    from firmware_bridge.intellivue.association import accept_for, encode_association, parse_association
    from firmware_bridge.intellivue.framing import Frame, FrameDecoder
    from firmware_bridge.intellivue.messages import (
        NOM_ACT_POLL_MDIB_DATA, ObservationPoll, PollReply, encode_poll_reply, parse_message, parse_poll_request, ABS_TIME_UNKNOWN,
    )
    from firmware_bridge.intellivue.monitor_sim import capture_content, static_attributes
    from firmware_bridge.intellivue.session import ClientSession, SessionState

    (create_ud, _create), _items, objects, origin = capture_content(capture)
    set_ud = next(ud for ud in capture.user_data if ud[:1] == b"\xe1" and parse_message(ud).command_type == 5)
    s = ClientSession()
    events = list(s.tick(0.0))
    sent = FrameDecoder().feed(b"".join(s.take_outgoing()))
    request = parse_association(sent[-1].user_data)
    events += s.receive(Frame(0x11, 1, encode_association(accept_for(request))), 0.1)
    events += s.receive(Frame(0x11, 1, create_ud), 0.2)
    events += s.receive(Frame(0x11, 1, set_ud), 0.3)
    static_req = parse_poll_request(parse_message(FrameDecoder().feed(b"".join(s.take_outgoing()))[-1].user_data))
    obs = tuple(ObservationPoll(o.handle, dict(static_attributes(o))) for o in objects)
    reply = PollReply(static_req.invoke_id, NOM_ACT_POLL_MDIB_DATA, static_req.poll_number, None, origin, ABS_TIME_UNKNOWN, 9, 0x0811, ((1, obs),))
    events += s.receive(Frame(0x11, 1, encode_poll_reply(reply)), 0.4)
    assert s.state == SessionState.STREAMING, (s.state, s.stats)
    s.take_outgoing()
    return s, events


def perseus_wave(name: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    from firmware_bridge.intellivue.capture import read_perseus_wave

    return read_perseus_wave(MONITORS / f"{name}.{kind}.txt")
