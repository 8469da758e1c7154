"""Data Export protocol messages: remote-operation envelopes and the commands this client and the
simulator exchange (MDS Create Event and its result, single and extended polls and their
replies, the wave priority list Set, remote errors).

Every data message starts with the session/presentation header ``SPpdu`` (0xE100, context 2),
then ``ROapdus`` (operation type, length), then an invoke/result header, then the command's own
structure. ``parse_message`` checks all three length fields against the bytes present and
raises ``PduError`` on any disagreement; the ``parse_*`` functions below interpret a message's
body and raise only ``PduError`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_bridge.intellivue.datatypes import (
    MDS_OBJECT,
    ManagedObjectId,
    PduError,
    Reader,
    Writer,
    read_attribute_list,
    read_text_id_list,
    write_attribute_list,
    write_text_id_list,
)
from firmware_bridge.intellivue.nomenclature import (
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ACT_POLL_MDIB_DATA_EXT,
    NOM_ATTR_POLL_RTSA_PRIO_LIST,
    NOM_ATTR_TIME_PD_POLL,
    NOM_NOTI_MDS_CREAT,
    NOM_PART_OBJ,
)

SESSION_ID = 0xE100
P_CONTEXT_ID = 2  # the presentation context the association negotiates for data messages

ROIV_APDU = 1  # invoke
RORS_APDU = 2  # result
ROER_APDU = 3  # error
ROLRS_APDU = 5  # linked result (one part of a reply too large for one message)

CMD_EVENT_REPORT = 0
CMD_CONFIRMED_EVENT_REPORT = 1
CMD_GET = 3
CMD_SET = 4
CMD_CONFIRMED_SET = 5
CMD_CONFIRMED_ACTION = 7

RORLS_FIRST = 1
RORLS_NOT_FIRST_NOT_LAST = 2
RORLS_LAST = 3

# ROER error values
NO_SUCH_OBJECT_CLASS = 0
NO_SUCH_ACTION = 9
PROCESSING_FAILURE = 10
INVALID_ARGUMENT_VALUE = 15

ABS_TIME_UNKNOWN = b"\xff" * 8


@dataclass(frozen=True)
class DataMessage:
    """A data export message's envelope; ``body`` is the command-specific part."""

    ro_type: int
    invoke_id: int
    command_type: int  # for ROER: the error value
    body: bytes
    linked: tuple[int, int] | None = None  # ROLRS (state, count)


def is_data_message(user_data: bytes) -> bool:
    """Data export messages start with 0xE1 (association control messages with their session type)."""
    return len(user_data) >= 1 and user_data[0] == 0xE1


def parse_message(user_data: bytes) -> DataMessage:
    r = Reader(user_data)
    if r.u16() != SESSION_ID:
        raise PduError("not a data export message (session id is not 0xE100)")
    r.u16()  # presentation context id
    ro_type, ro_len = r.u16(), r.u16()
    if ro_len != r.remaining:
        raise PduError(f"ROapdus length {ro_len} but {r.remaining} bytes follow")
    linked = None
    if ro_type == ROLRS_APDU:
        linked = (r.u8(), r.u8())
    elif ro_type not in (ROIV_APDU, RORS_APDU, ROER_APDU):
        raise PduError(f"unknown remote operation type {ro_type}")
    invoke_id, cmd, length = r.u16(), r.u16(), r.u16()
    if length != r.remaining:
        raise PduError(f"operation length {length} but {r.remaining} bytes follow")
    return DataMessage(ro_type, invoke_id, cmd, r.take(length), linked)


def encode_message(ro_type: int, invoke_id: int, command_type: int, body: bytes, linked: tuple[int, int] | None = None) -> bytes:
    w = Writer()
    w.u16(SESSION_ID).u16(P_CONTEXT_ID).u16(ro_type).begin_length()
    if ro_type == ROLRS_APDU:
        state, count = linked or (RORLS_FIRST, 1)
        w.u8(state).u8(count)
    w.u16(invoke_id).u16(command_type).u16(len(body)).raw(body)
    w.end_length()
    return w.bytes()


# -- MDS Create Event Report and its result ------------------------------------------------------
@dataclass(frozen=True)
class EventReport:
    managed_object: ManagedObjectId
    event_time: int
    event_type: int
    info: bytes


@dataclass(frozen=True)
class MdsCreate:
    """The monitor's announcement after association: its MDS object and attributes (bed label,
    model, the absolute/relative time pair that maps RelativeTime to wall clock)."""

    invoke_id: int
    managed_object: ManagedObjectId
    event_time: int
    attributes: dict[int, bytes]


def parse_event_report(msg: DataMessage) -> EventReport:
    r = Reader(msg.body)
    mo = ManagedObjectId.read(r)
    time, etype, length = r.u32(), r.u16(), r.u16()
    return EventReport(mo, time, etype, r.take(length))


def parse_mds_create(msg: DataMessage) -> MdsCreate:
    ev = parse_event_report(msg)
    if ev.event_type != NOM_NOTI_MDS_CREAT:
        raise PduError(f"event 0x{ev.event_type:04x} is not an MDS Create")
    r = Reader(ev.info)
    mo = ManagedObjectId.read(r)
    return MdsCreate(msg.invoke_id, mo, ev.event_time, read_attribute_list(r))


def encode_mds_create(invoke_id: int, event_time: int, attributes: list[tuple[int, bytes]], managed_object: ManagedObjectId = MDS_OBJECT) -> bytes:
    info = Writer()
    managed_object.write(info)
    write_attribute_list(info, attributes)
    w = Writer()
    managed_object.write(w)
    w.u32(event_time).u16(NOM_NOTI_MDS_CREAT).u16(len(info.bytes())).raw(info.bytes())
    return encode_message(ROIV_APDU, invoke_id, CMD_CONFIRMED_EVENT_REPORT, w.bytes())


def encode_mds_create_result(create: MdsCreate) -> bytes:
    """The client's reply to MDS Create (the guide: same object, the event's time, no data)."""
    w = Writer()
    create.managed_object.write(w)
    w.u32(create.event_time).u16(NOM_NOTI_MDS_CREAT).u16(0)
    return encode_message(RORS_APDU, create.invoke_id, CMD_CONFIRMED_EVENT_REPORT, w.bytes())


def parse_event_report_result(msg: DataMessage) -> EventReport:
    r = Reader(msg.body)
    mo = ManagedObjectId.read(r)
    time, etype, length = r.u32(), r.u16(), r.u16()
    return EventReport(mo, time, etype, r.take(length))


# -- polls --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PollRequest:
    """A single (``extended`` False) or extended poll for one object class and attribute group."""

    invoke_id: int
    poll_number: int
    obj_code: int
    attr_group: int
    extended: bool = False
    period_ticks: int | None = None  # extended: NOM_ATTR_TIME_PD_POLL, how long to keep replying
    partition: int = NOM_PART_OBJ


def encode_poll_request(req: PollRequest) -> bytes:
    arg = Writer()
    arg.u16(req.poll_number).u16(req.partition).u16(req.obj_code).u16(req.attr_group)
    if req.extended:
        attrs = []
        if req.period_ticks is not None:
            attrs.append((NOM_ATTR_TIME_PD_POLL, int(req.period_ticks).to_bytes(4, "big")))
        write_attribute_list(arg, attrs)
    w = Writer()
    MDS_OBJECT.write(w)
    w.u32(0).u16(NOM_ACT_POLL_MDIB_DATA_EXT if req.extended else NOM_ACT_POLL_MDIB_DATA)
    w.u16(len(arg.bytes())).raw(arg.bytes())
    return encode_message(ROIV_APDU, req.invoke_id, CMD_CONFIRMED_ACTION, w.bytes())


def parse_poll_request(msg: DataMessage) -> PollRequest:
    r = Reader(msg.body)
    ManagedObjectId.read(r)
    r.u32()  # scope
    action, length = r.u16(), r.u16()
    a = r.sub(length)
    if action not in (NOM_ACT_POLL_MDIB_DATA, NOM_ACT_POLL_MDIB_DATA_EXT):
        raise PduError(f"action 0x{action:04x} is not a poll")
    pn, part, code, grp = a.u16(), a.u16(), a.u16(), a.u16()
    period = None
    ext = action == NOM_ACT_POLL_MDIB_DATA_EXT
    if ext and a.remaining:
        attrs = read_attribute_list(a)
        raw = attrs.get(NOM_ATTR_TIME_PD_POLL)
        if raw is not None and len(raw) == 4:
            period = int.from_bytes(raw, "big")
    return PollRequest(msg.invoke_id, pn, code, grp, ext, period, part)


@dataclass(frozen=True)
class ObservationPoll:
    handle: int
    attributes: dict[int, bytes]


@dataclass(frozen=True)
class PollReply:
    """One poll result message (a whole reply, or one linked part of it)."""

    invoke_id: int
    action: int
    poll_number: int
    sequence_no: int | None  # extended polls only
    rel_time: int
    abs_time: bytes
    obj_code: int
    attr_group: int
    contexts: tuple[tuple[int, tuple[ObservationPoll, ...]], ...]
    linked: tuple[int, int] | None = None

    @property
    def observations(self) -> list[tuple[int, ObservationPoll]]:
        """(context id, observation) for every object in the reply."""
        return [(ctx, obs) for ctx, items in self.contexts for obs in items]


def parse_poll_reply(msg: DataMessage) -> PollReply:
    r = Reader(msg.body)
    ManagedObjectId.read(r)
    action, length = r.u16(), r.u16()
    a = r.sub(length)
    if action not in (NOM_ACT_POLL_MDIB_DATA, NOM_ACT_POLL_MDIB_DATA_EXT):
        raise PduError(f"action 0x{action:04x} is not a poll")
    pn = a.u16()
    seq = a.u16() if action == NOM_ACT_POLL_MDIB_DATA_EXT else None
    rel = a.u32()
    abs_time = a.take(8)
    a.u16()  # partition
    code, grp = a.u16(), a.u16()
    count, ln = a.u16(), a.u16()
    lst = a.sub(ln)
    contexts = []
    for _ in range(count):
        ctx = lst.u16()
        c2, l2 = lst.u16(), lst.u16()
        items = lst.sub(l2)
        obs = []
        for _ in range(c2):
            handle = items.u16()
            obs.append(ObservationPoll(handle, read_attribute_list(items)))
        contexts.append((ctx, tuple(obs)))
    return PollReply(msg.invoke_id, action, pn, seq, rel, abs_time, code, grp, tuple(contexts), msg.linked)


def encode_poll_reply(reply: PollReply) -> bytes:
    """A poll result (the simulator's side); linked replies keep their (state, count)."""
    lst = Writer()
    for ctx, items in reply.contexts:
        lst.u16(ctx)
        inner = Writer()
        for obs in items:
            inner.u16(obs.handle)
            write_attribute_list(inner, list(obs.attributes.items()))
        lst.u16(len(items)).u16(len(inner.bytes())).raw(inner.bytes())
    a = Writer()
    a.u16(reply.poll_number)
    if reply.action == NOM_ACT_POLL_MDIB_DATA_EXT:
        a.u16(reply.sequence_no or 0)
    a.u32(reply.rel_time).raw(reply.abs_time[:8].ljust(8, b"\xff")).u16(NOM_PART_OBJ).u16(reply.obj_code).u16(reply.attr_group)
    a.u16(len(reply.contexts)).u16(len(lst.bytes())).raw(lst.bytes())
    w = Writer()
    MDS_OBJECT.write(w)
    w.u16(reply.action).u16(len(a.bytes())).raw(a.bytes())
    ro = ROLRS_APDU if reply.linked else RORS_APDU
    return encode_message(ro, reply.invoke_id, CMD_CONFIRMED_ACTION, w.bytes(), reply.linked)


# -- the wave priority list (Set) ---------------------------------------------------------------
@dataclass(frozen=True)
class SetRequest:
    invoke_id: int
    modifications: tuple[tuple[int, int, bytes], ...]  # (modify operator, attribute id, value)


def encode_set_priority_list(invoke_id: int, labels: list[int] | tuple[int, ...], attribute: int = NOM_ATTR_POLL_RTSA_PRIO_LIST) -> bytes:
    """Set the wave (or numeric) priority list: which objects the monitor exports, in order."""
    value = Writer()
    write_text_id_list(value, tuple(labels))
    mods = Writer()
    mods.u16(1).begin_length().u16(0)  # one modification, REPLACE
    mods.u16(attribute).u16(len(value.bytes())).raw(value.bytes())
    mods.end_length()
    w = Writer()
    MDS_OBJECT.write(w)
    w.u32(0).raw(mods.bytes())
    return encode_message(ROIV_APDU, invoke_id, CMD_CONFIRMED_SET, w.bytes())


def parse_set_request(msg: DataMessage) -> SetRequest:
    r = Reader(msg.body)
    ManagedObjectId.read(r)
    r.u32()
    count, length = r.u16(), r.u16()
    body = r.sub(length)
    mods = []
    for _ in range(count):
        op, aid, alen = body.u16(), body.u16(), body.u16()
        mods.append((op, aid, body.take(alen)))
    return SetRequest(msg.invoke_id, tuple(mods))


@dataclass(frozen=True)
class SetResult:
    invoke_id: int
    attributes: dict[int, bytes]

    def text_ids(self, attribute: int = NOM_ATTR_POLL_RTSA_PRIO_LIST) -> tuple[int, ...]:
        raw = self.attributes.get(attribute)
        return () if raw is None else read_text_id_list(Reader(raw))


def parse_set_result(msg: DataMessage) -> SetResult:
    r = Reader(msg.body)
    ManagedObjectId.read(r)
    return SetResult(msg.invoke_id, read_attribute_list(r))


def encode_set_result(invoke_id: int, attributes: list[tuple[int, bytes]]) -> bytes:
    w = Writer()
    MDS_OBJECT.write(w)
    write_attribute_list(w, attributes)
    return encode_message(RORS_APDU, invoke_id, CMD_CONFIRMED_SET, w.bytes())


def encode_remote_error(invoke_id: int, error_value: int) -> bytes:
    return encode_message(ROER_APDU, invoke_id, error_value, b"")


@dataclass
class InvokeIds:
    """Invoke ids unique while a transaction is open (the guide's only rule); 16-bit, skipping 0."""

    next_id: int = 1
    open: dict[int, str] = field(default_factory=dict)

    def new(self, purpose: str) -> int:
        for _ in range(0x10000):
            i = self.next_id
            self.next_id = self.next_id % 0xFFFF + 1
            if i not in self.open:
                self.open[i] = purpose
                return i
        self.open.clear()
        return self.new(purpose)
