"""A Philips IntelliVue MP90 on a pseudo-terminal, replaying a real capture: ``edge-ecg monitor-sim``.

It prints the device path, waits for a client, and plays the monitor's side of the Data Export
protocol the way the MP90 did on the capture:

- **association**: answers an Association Request with an Association Response built by the
  guide's negotiation rules (the capture does not hold one), then sends the capture's own MDS
  Create Event Report (repeated every 2 s until the client confirms it);
- **wave priority list**: answers the Set with a Set Result listing the requested labels (the
  MP90 echoed PERSEUS's list; the capture's reply is reproduced byte for byte for that list),
  and exports only the listed waves from then on;
- **static attributes**: answers a single poll of the wave objects with their handles and labels
  (from the capture), sample period and array size (measured on the capture: 128 samples per
  2048 ticks for ECG I, 32 for pleth), and the scale the capture lacks: the IntelliVue ECG format
  of 14 significant bits, -40.96..40.955 mV over 0..0x3FFF (5 uV per count), and a 12-bit pleth
  with no absolute scale. These are documented defaults, not MP90 bytes;
- **extended polls** for waves, numerics and alarms: replays the capture's poll results of that
  kind in order, at the capture's own relative times (``--speed`` compresses them), rewritten
  only where a real monitor would differ for this client: invoke id, poll number and sequence
  number (which restarts with every new poll request, as on the capture). The relative-time
  stamps and observation contents are the MP90's bytes. Capture time 0 is when the client has
  polled all three kinds (or 1 s after its first wave poll);
- **keep-alive**: answers a single poll of the MDS object with the MDS attributes of the capture;
- **association time-out**: no message from the client for ``assoc_timeout_s`` (wall clock; 10 s
  as the guide gives for a 1 s minimum poll period): it aborts and forgets the polls.

Protocol timers (poll active periods, the association time-out) run on the wall clock, like the
client's; ``--speed`` only compresses the replayed capture time.

Faults (``--faults``, ``KIND@START[+DURATION][:PARAM]``, in seconds of capture time):
``drop@30+10:0.2`` drop each reply with probability 0.2; ``corrupt@30+10:0.1`` damage one byte
of each reply with that probability (the FCS catches it); ``garbage@40:300`` send 300 random
bytes; ``cut@60+20`` the cable is cut both ways (the pty stays open: silence, the way a pulled
MIB cable looks to the host); ``unplug@90+5`` the USB adapter is unplugged (the pty and the
``--link`` disappear, a new one appears after the duration).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from firmware_bridge.intellivue.association import (
    Abort,
    AssociationRequest,
    ReleaseRequest,
    ReleaseResponse,
    accept_for,
    encode_association,
    parse_association,
)
from firmware_bridge.intellivue.capture import Capture, read_capture
from firmware_bridge.sim_support import Fault, FaultSpecError, PtyDevice, parse_fault_spec, spawn_simulator
from firmware_bridge.intellivue.datatypes import PduError, Reader, encode_float, read_attribute_list, read_text_id_list, write_text_id_list, Writer
from firmware_bridge.intellivue.framing import FrameDecoder, encode_frame
from firmware_bridge.intellivue.messages import (
    ABS_TIME_UNKNOWN,
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    CMD_CONFIRMED_SET,
    NO_SUCH_OBJECT_CLASS,
    ROIV_APDU,
    ROLRS_APDU,
    RORS_APDU,
    ObservationPoll,
    PollReply,
    encode_poll_reply,
    encode_remote_error,
    encode_set_result,
    is_data_message,
    parse_mds_create,
    parse_message,
    parse_poll_reply,
    parse_poll_request,
    parse_set_request,
)
from firmware_bridge.intellivue.nomenclature import (
    ECG_LEADS,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_ID_HANDLE,
    NOM_ATTR_ID_LABEL,
    NOM_ATTR_ID_TYPE,
    NOM_ATTR_POLL_RTSA_PRIO_LIST,
    NOM_ATTR_SA_CALIB_I16,
    NOM_ATTR_SA_SPECN,
    NOM_ATTR_SA_VAL_OBS,
    NOM_ATTR_SCALE_SPECN_I16,
    NOM_ATTR_TIME_PD_SAMP,
    NOM_ATTR_UNIT_CODE,
    NOM_DIM_DIMLESS,
    NOM_DIM_MILLI_VOLT,
    NOM_MOC_VMO_AL_MON,
    NOM_MOC_VMO_METRIC_NU,
    NOM_MOC_VMO_METRIC_SA_RT,
    NOM_MOC_VMS_MDS,
    NOM_PART_SCADA,
    WAVE_LABEL_PREFIX,
)
from firmware_bridge.intellivue.observations import ScaleRange, wave_observations

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "corrupt", "garbage", "cut", "unplug")
_DEFAULT_PARAM = {"drop": "0.1", "corrupt": "0.1", "garbage": "256"}
RT_PER_S = 8000
POLLED = (NOM_MOC_VMO_METRIC_SA_RT, NOM_MOC_VMO_METRIC_NU, NOM_MOC_VMO_AL_MON)
_KIND = {NOM_MOC_VMO_METRIC_SA_RT: "waves", NOM_MOC_VMO_METRIC_NU: "numerics", NOM_MOC_VMO_AL_MON: "alarms"}


def _check_probability(fault: Fault, item: str) -> None:
    try:
        value = float(fault.param) if fault.param else 0.0
    except ValueError:
        raise FaultSpecError(f"fault {item!r}: parameter {fault.param!r} is not a number") from None
    if fault.kind in ("drop", "corrupt") and not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"fault {item!r}: probability must be in [0, 1]")


def parse_faults(spec: str) -> list[Fault]:
    """``"corrupt@20+10:0.2,cut@60+15"`` -> faults; ``FaultSpecError`` names the bad item."""
    return parse_fault_spec(spec, FAULT_KINDS, _DEFAULT_PARAM, ("drop", "corrupt", "cut", "unplug"), _check_probability)


@dataclass(frozen=True)
class ReplayItem:
    """One captured poll result, due at ``due_s`` of capture time."""

    due_s: float
    code: int  # polled object class
    rel_time: int
    user_data: bytes
    linked: bool  # ROLRS: two more bytes before the invoke id


@dataclass(frozen=True)
class WaveObject:
    handle: int
    physio_id: int
    array_size: int
    period_ticks: int


def capture_content(capture: Capture):
    """Split a capture into its MDS Create, the poll results to replay, and the wave objects."""
    create = None
    items: list[tuple[int, int, bytes, bool]] = []
    waves: dict[int, list] = {}
    for ud in capture.user_data:
        if not is_data_message(ud):
            continue
        try:
            msg = parse_message(ud)
        except PduError:
            continue
        if msg.ro_type == ROIV_APDU and msg.command_type == CMD_CONFIRMED_EVENT_REPORT and create is None:
            create = (ud, parse_mds_create(msg))
        elif msg.ro_type in (RORS_APDU, ROLRS_APDU) and msg.command_type == CMD_CONFIRMED_ACTION:
            reply = parse_poll_reply(msg)
            if reply.action != NOM_ACT_POLL_MDIB_DATA_EXT or reply.obj_code not in POLLED:
                continue
            items.append((reply.obj_code, reply.rel_time, ud, msg.ro_type == ROLRS_APDU))
            if reply.obj_code == NOM_MOC_VMO_METRIC_SA_RT:
                for _ctx, obs in reply.observations:
                    for w in wave_observations(obs.handle, obs.attributes):
                        waves.setdefault(obs.handle, []).append((reply.rel_time, w.physio_id, len(w.samples)))
    if create is None:
        raise PduError(f"{capture.path}: no MDS Create Event in the capture")
    objects = []
    for handle, seen in waves.items():
        seen.sort()
        n = max(s[2] for s in seen)
        steps = np.diff([s[0] for s in seen])
        step = int(np.median(steps)) if steps.size else 2048
        objects.append(WaveObject(handle, seen[0][1], n, max(1, step // max(1, n))))
    origin = min((rt for code, rt, _ud, _l in items if code == NOM_MOC_VMO_METRIC_SA_RT), default=min((i[1] for i in items), default=0))
    replay = []
    last = 0.0
    for code, rt, ud, linked in items:
        due = (rt - origin) / RT_PER_S
        if code == NOM_MOC_VMO_METRIC_SA_RT:
            due += 2048 / RT_PER_S  # a wave reply leaves once its 256 ms of samples exist
        last = max(last, due)  # keep the capture's order
        replay.append(ReplayItem(last, code, rt, ud, linked))
    return create, replay, objects, origin


def static_attributes(obj: WaveObject) -> list[tuple[int, bytes]]:
    """What the simulator answers for a wave object's static attributes (see the module docstring
    for where each value comes from)."""
    label = WAVE_LABEL_PREFIX | obj.physio_id
    attrs = [
        (NOM_ATTR_ID_HANDLE, obj.handle.to_bytes(2, "big")),
        (NOM_ATTR_ID_TYPE, NOM_PART_SCADA.to_bytes(2, "big") + obj.physio_id.to_bytes(2, "big")),
        (NOM_ATTR_ID_LABEL, label.to_bytes(4, "big")),
        (NOM_ATTR_TIME_PD_SAMP, obj.period_ticks.to_bytes(4, "big")),
    ]
    if obj.physio_id in ECG_LEADS:
        scale = ScaleRange(-40.96, 40.955, 0, 0x3FFF)
        spec = struct.pack(">HBBH", obj.array_size, 16, 14, 0x3000)  # STATIC_SCALE | SA_EXT_VAL_RANGE
        unit = NOM_DIM_MILLI_VOLT
        cal = Writer().u32(encode_float(0.0)).u32(encode_float(1.0)).u16(0x2000).u16(0x2000 + 200).u16(200).u16(0).bytes()
        attrs += [(NOM_ATTR_SA_SPECN, spec), (NOM_ATTR_SCALE_SPECN_I16, scale.encode()), (NOM_ATTR_UNIT_CODE, unit.to_bytes(2, "big")),
                  (NOM_ATTR_SA_CALIB_I16, cal)]
    else:
        scale = ScaleRange(float("nan"), float("nan"), 0, 0x0FFF)
        spec = struct.pack(">HBBH", obj.array_size, 16, 12, 0x8000)  # SMOOTH_CURVE
        attrs += [(NOM_ATTR_SA_SPECN, spec), (NOM_ATTR_SCALE_SPECN_I16, scale.encode()), (NOM_ATTR_UNIT_CODE, NOM_DIM_DIMLESS.to_bytes(2, "big"))]
    return attrs


@dataclass
class _Poll:
    invoke_id: int
    poll_number: int
    until_wall: float
    seq: int = 0


class MonitorSimulator(PtyDevice):
    """One simulated monitor; ``run()`` blocks until the capture has been replayed (or ``stop()``)."""

    def __init__(
        self,
        capture: Capture,
        *,
        speed: float = 1.0,
        faults: Sequence[Fault] = (),
        link: str | os.PathLike[str] | None = None,
        seed: int = 0,
        assoc_timeout_s: float = 10.0,
        answer_static: bool = True,
        linger_s: float = 5.0,
        report: str | os.PathLike[str] | None = None,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.capture = capture
        self.speed = float(speed)
        self.faults = list(faults)
        self.link = Path(link) if link else None
        self.rng = np.random.default_rng(seed)
        self.assoc_timeout_s = assoc_timeout_s
        self.answer_static = answer_static
        self.linger_s = linger_s
        self.report_path = Path(report) if report else None
        self.on_event = on_event or (lambda kind, detail: log.info("monitor-sim %s %s", kind, detail))
        (self._create_ud, self._create), self.items, self.wave_objects, self.origin_rt = capture_content(capture)
        self.master: int | None = None
        self.slave: int | None = None
        self.path = ""
        self._stop = False
        # protocol state
        self.associated = False
        self._create_confirmed = False
        self._create_sent_at = 0.0
        self._last_rx = 0.0
        self._polls: dict[int, _Poll] = {}
        self._labels: tuple[int, ...] | None = None  # wave priority list; None = everything
        self._out: collections.deque[bytes] = collections.deque()
        # byte accounting, so the report says exactly which wave replies the host could have read:
        # a reply is "delivered" once queued; if the line is cut or the adapter pulled before the
        # host read its last byte, it moves to "lost_on_line"
        self._queued = 0  # bytes ever queued for the line
        self._written = 0  # bytes ever written to the pty
        self._in_flight: collections.deque[tuple[int, int]] = collections.deque()  # (end offset, rt) of delivered waves
        self._t_start: float | None = None  # wall time at capture time 0
        self._first_wave_poll: float | None = None
        self.log: dict[str, list] = {"delivered": [], "dropped": [], "corrupted": [], "not_sent": [], "lost_on_line": []}
        self.counts = collections.Counter()

    def stop(self) -> None:
        self._stop = True

    # -- time ---------------------------------------------------------------------------------------
    def capture_time(self, now: float) -> float | None:
        return None if self._t_start is None else (now - self._t_start) * self.speed

    def monitor_rt(self, now: float) -> int:
        t = self.capture_time(now)
        return (self.origin_rt + int((t or 0.0) * RT_PER_S)) & 0xFFFFFFFF

    # -- protocol ------------------------------------------------------------------------------------
    def _send(self, user_data: bytes) -> None:
        self._enqueue(encode_frame(user_data))

    def _enqueue(self, data: bytes, wave_rt: int | None = None) -> None:
        self._out.append(data)
        self._queued += len(data)
        if wave_rt is not None:
            self._in_flight.append((self._queued, wave_rt))

    def _settle(self, lost_from: int | None = None) -> None:
        """Account for wave replies in flight: those the host has read stay delivered. When the line
        is lost, everything after byte ``lost_from`` of the stream becomes lost_on_line (for a cut
        cable, what is already in the host's buffer survives; for a pulled adapter it does not)."""
        read = self._written - self._unread()
        while self._in_flight and self._in_flight[0][0] <= read:
            self._in_flight.popleft()
        if lost_from is None:
            return
        keep: collections.deque[tuple[int, int]] = collections.deque()
        for end, rt in self._in_flight:
            if end <= lost_from:
                keep.append((end, rt))
                continue
            self.log["delivered"].remove(rt)
            self.log["lost_on_line"].append(rt)
            self.counts["waves_delivered"] -= 1
            self.counts["waves_lost_on_line"] += 1
        self._in_flight = keep
        self._out.clear()
        self._queued = self._written

    def handle_request(self, user_data: bytes, now: float) -> None:
        """One message from the client; a request that does not parse is counted, never raised."""
        try:
            self._handle(user_data, now)
        except PduError as exc:
            self.counts["bad_requests"] += 1
            log.debug("monitor-sim: unparsable request: %s", exc)
        except Exception as exc:  # a simulator bug must not end the replay
            self.counts["bad_requests"] += 1
            log.warning("monitor-sim: request handling failed: %r", exc)

    def _handle(self, user_data: bytes, now: float) -> None:
        self._last_rx = now
        if not is_data_message(user_data):
            msg = parse_association(user_data)
            if isinstance(msg, AssociationRequest):
                self._send(encode_association(accept_for(msg)))
                self._send(self._create_ud)
                self.associated, self._create_confirmed, self._create_sent_at = True, False, now
                self._polls.clear()
                self.counts["associations"] += 1
                self.on_event("associated", f"association {self.counts['associations']}")
            elif isinstance(msg, ReleaseRequest):
                self._send(encode_association(ReleaseResponse()))
                self._disassociate("released by the client")
            elif isinstance(msg, Abort):
                self._disassociate("aborted by the client")
            return
        if not self.associated:
            return  # a monitor ignores data messages outside an association
        msg = parse_message(user_data)
        if msg.ro_type == RORS_APDU and msg.command_type == CMD_CONFIRMED_EVENT_REPORT:
            self._create_confirmed = True
        elif msg.ro_type == ROIV_APDU and msg.command_type == CMD_CONFIRMED_SET:
            self._set(msg)
        elif msg.ro_type == ROIV_APDU and msg.command_type == CMD_CONFIRMED_ACTION:
            self._action(msg, now)

    def _disassociate(self, why: str) -> None:
        if self.associated:
            self.on_event("disassociated", why)
        self.associated = False
        self._polls.clear()

    def _set(self, msg) -> None:
        req = parse_set_request(msg)
        attrs = []
        for _op, aid, value in req.modifications:
            if aid == NOM_ATTR_POLL_RTSA_PRIO_LIST:
                self._labels = read_text_id_list(Reader(value))
                w = Writer()
                write_text_id_list(w, self._labels)
                attrs.append((aid, w.bytes()))
        self._send(encode_set_result(msg.invoke_id, attrs))

    def _exported(self, physio_id: int) -> bool:
        return self._labels is None or (WAVE_LABEL_PREFIX | physio_id) in self._labels

    def _action(self, msg, now: float) -> None:
        req = parse_poll_request(msg)
        if not req.extended:
            if req.obj_code == NOM_MOC_VMO_METRIC_SA_RT and self.answer_static:
                obs = tuple(ObservationPoll(o.handle, dict(static_attributes(o))) for o in self.wave_objects if self._exported(o.physio_id))
                contexts = ((1, obs),)
            elif req.obj_code == NOM_MOC_VMS_MDS:
                contexts = ((0, (ObservationPoll(0, dict(self._create.attributes)),)),)
            elif req.obj_code in POLLED:
                contexts = ()
            else:
                self._send(encode_remote_error(msg.invoke_id, NO_SUCH_OBJECT_CLASS))
                return
            if req.obj_code == NOM_MOC_VMO_METRIC_SA_RT and not self.answer_static:
                return  # fault mode: a monitor that never answers the static poll
            self._send(encode_poll_reply(PollReply(msg.invoke_id, NOM_ACT_POLL_MDIB_DATA, req.poll_number, None, self.monitor_rt(now),
                                                   ABS_TIME_UNKNOWN, req.obj_code, req.attr_group, contexts)))
            return
        if req.obj_code not in POLLED:
            self._send(encode_remote_error(msg.invoke_id, NO_SUCH_OBJECT_CLASS))
            return
        period = (req.period_ticks or 0) / RT_PER_S
        self._polls[req.obj_code] = _Poll(msg.invoke_id, req.poll_number, now + max(period, 1.0))
        if self._t_start is None and req.obj_code == NOM_MOC_VMO_METRIC_SA_RT and self._first_wave_poll is None:
            self._first_wave_poll = now
        self._maybe_start(now)

    def _maybe_start(self, now: float) -> None:
        """Capture time 0 is when the client polls all three kinds (as PERSEUS had when the capture
        began), or 1 s of wall time after its first wave poll if it never asks for the others."""
        if self._t_start is not None or self._first_wave_poll is None:
            return
        if all(code in self._polls for code in POLLED) or now - self._first_wave_poll >= 1.0:
            self._t_start = now
            self.on_event("replay", f"{len(self.items)} replies over {self.items[-1].due_s:.1f} s of capture at {self.speed:g}x")

    def _reply_bytes(self, item: ReplayItem, poll: _Poll) -> bytes:
        """The captured reply, as this poll's reply: invoke id, poll number, sequence number."""
        ud = bytearray(item.user_data)
        o = 2 if item.linked else 0
        struct.pack_into(">H", ud, 8 + o, poll.invoke_id)
        struct.pack_into(">HH", ud, 24 + o, poll.poll_number, poll.seq & 0xFFFF)
        if item.code == NOM_MOC_VMO_METRIC_SA_RT and self._labels is not None:
            ud = bytearray(self._filter_waves(bytes(ud)))
        return bytes(ud)

    def _filter_waves(self, ud: bytes) -> bytes:
        """Drop the waves the priority list does not name (re-encoded; unchanged if nothing to drop)."""
        msg = parse_message(ud)
        reply = parse_poll_reply(msg)
        keep = []
        changed = False
        for ctx, items in reply.contexts:
            kept = []
            for obs in items:
                waves = wave_observations(obs.handle, obs.attributes)
                if waves and not all(self._exported(w.physio_id) for w in waves) and NOM_ATTR_SA_VAL_OBS in obs.attributes:
                    changed = True
                    continue
                kept.append(obs)
            keep.append((ctx, tuple(kept)))
        if not changed:
            return ud
        return encode_poll_reply(PollReply(reply.invoke_id, reply.action, reply.poll_number, reply.sequence_no, reply.rel_time,
                                           reply.abs_time, reply.obj_code, reply.attr_group, tuple(keep), reply.linked))

    def _corrupt(self, wire: bytes) -> bytes:
        a = bytearray(wire)
        i = int(self.rng.integers(1, len(a) - 1))
        a[i] ^= 1 << int(self.rng.integers(0, 8))
        return bytes(a)

    # -- the main loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        self._plug()
        self.on_event("pty", self.device_path)
        decoder = FrameDecoder()
        out = b""
        nxt = 0  # next replay item
        fired: set[int] = set()
        unplugged_until: float | None = None
        done_at: float | None = None
        drained_at: float | None = None
        try:
            while not self._stop:
                now = time.monotonic()
                t = self.capture_time(now)
                if unplugged_until is not None:
                    if now < unplugged_until:
                        nxt = self._skip_due(nxt, t, "not_sent")
                        time.sleep(min(0.01, unplugged_until - now))
                        continue
                    self._plug()
                    unplugged_until = None
                    decoder = FrameDecoder()
                    self.on_event("replug", self.path)
                if t is not None:
                    for k, f in enumerate(self.faults):
                        if f.kind == "unplug" and k not in fired and t >= f.start_s:
                            fired.add(k)
                            # the kernel moves written bytes into the host's read buffer asynchronously:
                            # let it settle (no unread bytes three times in a row, at most 1 s), so that
                            # "unread" counts everything that reached the pty when the adapter goes
                            quiet, until = 0, time.monotonic() + 1.0
                            while quiet < 3 and time.monotonic() < until:
                                time.sleep(0.02)
                                quiet = quiet + 1 if self._unread() == 0 else 0
                            self._settle(lost_from=self._written - self._unread())
                            self._unplug()
                            out = b""
                            unplugged_until = now + f.duration_s / self.speed
                            self.on_event("unplug", f"for {f.duration_s:g} s of capture")
                    if unplugged_until is not None:
                        continue
                cut = t is not None and any(f.kind == "cut" and f.active(t) for f in self.faults)
                try:
                    data = os.read(self.master, 65536)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:
                    data = b""
                if data and not cut:
                    for frame in decoder.feed(data):
                        self.handle_request(frame.user_data, now)
                # the monitor's own timers
                if self.associated and now - self._last_rx > self.assoc_timeout_s:
                    self._send(encode_association(Abort()))
                    self._disassociate(f"association timed out ({self.assoc_timeout_s:g} s without a client message)")
                if self.associated and not self._create_confirmed and now - self._create_sent_at > 2.0:
                    self._send(self._create_ud)
                    self._create_sent_at = now
                for code in [c for c, p in self._polls.items() if now > p.until_wall]:
                    del self._polls[code]
                self._maybe_start(now)
                # replay what is due
                if t is not None:
                    for k, f in enumerate(self.faults):
                        if f.kind == "garbage" and k not in fired and t >= f.start_s:
                            fired.add(k)
                            self._enqueue(self.rng.integers(0, 256, size=int(float(f.param))).astype(np.uint8).tobytes())
                    while nxt < len(self.items) and self.items[nxt].due_s <= t:
                        self._deliver(self.items[nxt], t, cut)
                        nxt += 1
                if cut:
                    if self._out or out:
                        self._settle(lost_from=self._written)  # what never left is gone; the host's buffer stays
                    out = b""
                # write what the line takes
                while True:
                    if not out:
                        if not self._out:
                            break
                        out = self._out.popleft()
                    try:
                        n = os.write(self.master, out)
                    except BlockingIOError:
                        break
                    except OSError:
                        out = b""
                        break
                    out = out[n:]
                    self._written += n
                    if out:
                        break
                self._settle()
                # the end: wait for the client to read what is in the pty, then exit
                if t is not None and nxt >= len(self.items) and not out and not self._out:
                    if done_at is None:
                        done_at = now
                        self.on_event("end", self._summary())
                    if self._unread() > 0:
                        drained_at = None
                    elif drained_at is None:
                        drained_at = now
                    if (drained_at is not None and now - drained_at > 0.3) or now - done_at > self.linger_s:
                        break
                wait = [self.master] if (out or self._out) else []
                timeout = 0.005 if t is not None else 0.02
                select.select([self.master], wait, [], timeout)
        finally:
            self._unplug()
            if self.report_path is not None:
                self.report_path.write_text(json.dumps(self.report(), indent=1))
        return 0

    def _skip_due(self, nxt: int, t: float | None, why: str) -> int:
        while t is not None and nxt < len(self.items) and self.items[nxt].due_s <= t:
            self._record(self.items[nxt], why)
            nxt += 1
        return nxt

    def _record(self, item: ReplayItem, what: str) -> None:
        self.counts[f"{_KIND[item.code]}_{what}"] += 1
        if item.code == NOM_MOC_VMO_METRIC_SA_RT:
            self.log[what].append(item.rel_time)

    def _deliver(self, item: ReplayItem, t: float, cut: bool) -> None:
        poll = self._polls.get(item.code)
        if cut or not self.associated or poll is None:
            self._record(item, "not_sent")
            return
        wire = encode_frame(self._reply_bytes(item, poll))
        poll.seq += 1
        for f in self.faults:
            if f.active(t) and f.kind == "drop" and self.rng.random() < float(f.param):
                self._record(item, "dropped")
                return
        for f in self.faults:
            if f.active(t) and f.kind == "corrupt" and self.rng.random() < float(f.param):
                self._enqueue(self._corrupt(wire))
                self._record(item, "corrupted")
                return
        self._enqueue(wire, item.rel_time if item.code == NOM_MOC_VMO_METRIC_SA_RT else None)
        self._record(item, "delivered")

    def _summary(self) -> str:
        c = self.counts
        return (f"waves delivered {c['waves_delivered']}, dropped {c['waves_dropped']}, corrupted {c['waves_corrupted']}, "
                f"lost on the line {c['waves_lost_on_line']}, not sent {c['waves_not_sent']}; associations {c['associations']}")

    def report(self) -> dict:
        """What was sent, for a test to check the client against: wave replies by relative time."""
        return {"capture": str(self.capture.path), "origin_rt": self.origin_rt, "speed": self.speed,
                "wave_objects": [o.__dict__ for o in self.wave_objects], "counts": dict(self.counts), **self.log}


def run_monitor_sim(capture_spec: str, *, speed: float = 1.0, faults: str = "", link: str | None = None, seed: int = 0,
                    assoc_timeout_s: float = 10.0, answer_static: bool = True, report: str | None = None,
                    print_fn: Callable[[str], None] = print) -> int:
    """The ``edge-ecg monitor-sim`` command: read the capture, print the device path, replay it."""
    from firmware_bridge.intellivue.capture import resolve_capture

    fault_list = parse_faults(faults)
    capture = read_capture(resolve_capture(capture_spec))

    def on_event(kind: str, detail: str) -> None:
        if kind == "pty":
            print_fn(detail)
            sys.stdout.flush()
        else:
            log.info("monitor-sim %s %s", kind, detail)

    sim = MonitorSimulator(capture, speed=speed, faults=fault_list, link=link, seed=seed, assoc_timeout_s=assoc_timeout_s,
                           answer_static=answer_static, report=report, on_event=on_event)
    log.info("monitor-sim %s: %d frames, %d replies to replay, waves %s, speed %gx", capture.path, len(capture.bodies), len(sim.items),
             ", ".join(f"{o.handle}:0x{o.physio_id:04X}@{8000 / o.period_ticks:g}Hz" for o in sim.wave_objects), speed)
    return sim.run()


def spawn_monitor_sim(capture: str | os.PathLike[str], *args: str, timeout_s: float = 60.0, cwd: str | os.PathLike[str] | None = None):
    """Start ``edge-ecg monitor-sim CAPTURE ARGS...`` as its own process; returns ``(process, device path)``."""
    return spawn_simulator("monitor-sim", capture, *args, timeout_s=timeout_s, cwd=cwd)
