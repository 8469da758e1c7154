"""The client side of a Data Export session, without I/O: bytes in, events and bytes out.

``ClientSession`` walks the guide's sequence and keeps it going::

    Association Request  ->  Association Response (negotiated: waves, real-time numerics)
                         <-  MDS Create Event Report      ->  MDS Create Event Result
    Set wave priority list (ECG leads, pleth)              <-  Set Result (what the monitor exports)
    Single poll, wave objects, static attributes           <-  sample period, array spec, scale, unit
    Extended polls: waves, numerics, alarms (active 60 s)  <-  a reply every 256 ms / 1 s ...
    every 4 s: keep-alive (single poll of the MDS); every 20 s: extended polls again

Waves are requested with the observed-value attribute group only (as on the MP90 captures), so
the scale arrives once, from the static poll, and each reply stays small. Replies are matched
by the polled object class (numerics/waves/alarms), not by invoke id, so a reply to an earlier
request of the same kind is still used.

``receive(frame, now)`` and ``tick(now)`` never raise: a message that does not parse, or that
does not belong to the current state, is counted (``stats``) and skipped. The owner (the serial
source) writes ``take_outgoing()`` to the port, calls ``tick`` often, and calls ``link_lost``
when the line went silent or the port failed; the next ``tick`` aborts whatever the monitor may
still hold and associates again.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

from firmware_bridge.intellivue.association import (
    POLL_EXT_PERIOD_NU_1SEC,
    POLL_EXT_PERIOD_RTSA,
    RT_TICKS_PER_S,
    Abort,
    AssociationRefuse,
    AssociationRequest,
    AssociationResponse,
    PollProfile,
    ReleaseRequest,
    ReleaseResponse,
    UserInfo,
    encode_association,
    parse_association,
)
from firmware_bridge.intellivue.datatypes import PduError, Reader, read_absolute_time, read_string
from firmware_bridge.intellivue.framing import Frame, encode_frame
from firmware_bridge.intellivue.messages import (
    CMD_CONFIRMED_ACTION,
    CMD_CONFIRMED_EVENT_REPORT,
    CMD_CONFIRMED_SET,
    CMD_EVENT_REPORT,
    ROER_APDU,
    ROIV_APDU,
    ROLRS_APDU,
    RORS_APDU,
    InvokeIds,
    MdsCreate,
    PollRequest,
    encode_mds_create_result,
    encode_poll_request,
    encode_set_priority_list,
    is_data_message,
    parse_mds_create,
    parse_message,
    parse_poll_reply,
    parse_set_result,
)
from firmware_bridge.intellivue.nomenclature import (
    AUX_WAVES,
    ECG_LEADS,
    NOM_ACT_POLL_MDIB_DATA,
    NOM_ATTR_GRP_ALL,
    NOM_ATTR_GRP_METRIC_VAL_OBS,
    NOM_ATTR_GRP_VMO_STATIC,
    NOM_ATTR_ID_BED_LABEL,
    NOM_ATTR_ID_MODEL,
    NOM_ATTR_TIME_ABS,
    NOM_ATTR_TIME_REL,
    NOM_MOC_VMO_AL_MON,
    NOM_MOC_VMO_METRIC_NU,
    NOM_MOC_VMO_METRIC_SA_RT,
    NOM_MOC_VMS_MDS,
    NOM_NOTI_MDS_CREAT,
    NOM_PULS_OXIM_PLETH,
    WAVE_LABEL_PREFIX,
)
from firmware_bridge.intellivue.observations import (
    AlarmEntry,
    NumericObservation,
    ScaleRange,
    WaveObservation,
    WaveSpec,
    alarm_entries,
    numeric_observations,
    wave_observations,
    wave_spec,
)

log = logging.getLogger(__name__)

_LEAD_IDS = {name: pid for pid, name in ECG_LEADS.items()}
_AUX_IDS = {name: pid for pid, (name, _unit) in AUX_WAVES.items()}

# What a monitor that never answers the static poll is assumed to send, per physio id: the
# IntelliVue ECG wave format (14 significant bits, -40.96..40.955 mV over 0..0x3FFF, i.e. 5 uV
# per count around 8192; the values open implementations such as VSCaptureMP fall back to) and a
# 12-bit pleth without absolute scale. Used only after ``scale_wait_s`` and logged as such.
ECG_DEFAULT_SCALE = ScaleRange(-40.96, 40.955, 0, 0x3FFF)


def default_spec(handle: int, physio_id: int) -> WaveSpec | None:
    if physio_id in ECG_LEADS:
        return WaveSpec(handle, WAVE_LABEL_PREFIX | physio_id, 16, 128, 16, 14, 0x3000, ECG_DEFAULT_SCALE, 0x10B2)
    if physio_id == NOM_PULS_OXIM_PLETH:
        return WaveSpec(handle, WAVE_LABEL_PREFIX | physio_id, 64, 32, 16, 12, 0x8000, ScaleRange(float("nan"), float("nan"), 0, 0x0FFF), 0x0200)
    return None


class SessionState(str, enum.Enum):
    IDLE = "idle"  # not associated; (re)association pending
    ASSOCIATING = "associating"  # request sent, waiting for the response
    WAIT_CREATE = "wait_create"  # associated, waiting for the MDS Create Event
    CONFIGURING = "configuring"  # priority list and static attributes
    STREAMING = "streaming"  # extended polls running
    RELEASING = "releasing"
    CLOSED = "closed"


@dataclass(frozen=True)
class ClientConfig:
    """What to ask the monitor for and how often (seconds of the caller's clock)."""

    waves: tuple[str, ...] = ("I", "II", "III", "PLETH")  # wave priority list, in order
    min_poll_period_s: float = 1.0  # -> association time-out of 10 s without client messages
    poll_active_s: float = 60.0  # active period requested for each extended poll
    repoll_s: float = 20.0  # extended polls are renewed this often
    keepalive_s: float = 4.0  # a single poll of the MDS object this often (the monitor aborts after 10 s of silence)
    retry_s: float = 2.0  # association / configuration steps not answered: ask again
    scale_wait_s: float = 8.0  # static attributes not received: fall back to the documented defaults
    numerics: bool = True
    alarms: bool = True


# -- events handed to the owner -------------------------------------------------------------------
@dataclass(frozen=True)
class Associated:
    user_info: UserInfo


@dataclass(frozen=True)
class MonitorInfo:
    """From the MDS Create Event: who the monitor is and its RelativeTime <-> wall-clock pair."""

    bed_label: str
    model: str
    abs_time: str | None
    rel_time: int
    event_time: int


@dataclass(frozen=True)
class WavesReady:
    specs: tuple[WaveSpec, ...]
    granted_labels: tuple[int, ...]
    scale_source: str  # "monitor" | "default"


@dataclass(frozen=True)
class WaveData:
    rel_time: int
    sequence_no: int | None
    observations: tuple[WaveObservation, ...]


@dataclass(frozen=True)
class NumericData:
    rel_time: int
    values: tuple[NumericObservation, ...]


@dataclass(frozen=True)
class AlarmData:
    rel_time: int
    entries: tuple[AlarmEntry, ...]


@dataclass(frozen=True)
class Disassociated:
    reason: str


@dataclass(frozen=True)
class Problem:
    text: str


@dataclass
class SessionStats:
    associations: int = 0
    frames_in: int = 0
    bad_pdus: int = 0  # frames whose content did not parse
    unexpected: int = 0  # parsed, but not something this state expects
    remote_errors: int = 0
    refused: int = 0
    aborts_received: int = 0
    wave_replies: int = 0
    numeric_replies: int = 0
    alarm_replies: int = 0
    last_problem: str = ""


def label_for(name: str) -> int | None:
    """Wave name (canonical lead, "PLETH", "ABP") -> TextId for the priority list."""
    pid = _LEAD_IDS.get(name, _AUX_IDS.get(name.upper()))
    return None if pid is None else WAVE_LABEL_PREFIX | pid


class ClientSession:
    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self.state = SessionState.IDLE
        self.stats = SessionStats()
        self.specs: dict[int, WaveSpec] = {}  # handle -> static attributes
        self.monitor: MonitorInfo | None = None
        self.granted: UserInfo | None = None
        self._ids = InvokeIds()
        self._out: list[bytes] = []
        self._poll_number = 0
        self._due: dict[str, float] = {}  # timer name -> when
        self._state_since = 0.0
        self._static_parts: dict[int, WaveSpec] = {}
        self._granted_labels: tuple[int, ...] = ()
        self._config_step = "priority"  # then "static"
        self._fell_back = False
        self._create_key: tuple | None = None
        self.scale_source = "monitor"  # or "default" when the monitor never sent the static attributes
        self._abort_first = False

    # -- owner interface ---------------------------------------------------------------------
    @property
    def state_since(self) -> float:
        """The caller's clock when the session entered its current state."""
        return self._state_since

    def take_outgoing(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def link_lost(self, now: float, reason: str = "link lost") -> list:
        """The line went silent or the port failed: associate again (aborting any stale association)."""
        events = []
        if self.state not in (SessionState.IDLE, SessionState.CLOSED):
            events.append(Disassociated(reason))
        if self.state != SessionState.CLOSED:
            self._to(SessionState.IDLE, now)
            self._abort_first = True
            self._due = {"associate": now}
        return events

    def release(self, now: float) -> None:
        """Ask the monitor to end the association (sent on close)."""
        if self.state in (SessionState.IDLE, SessionState.CLOSED):
            self._to(SessionState.CLOSED, now)
            return
        self._send(encode_association(ReleaseRequest()))
        self._to(SessionState.RELEASING, now)

    def close(self, now: float) -> None:
        self._to(SessionState.CLOSED, now)
        self._due.clear()

    def tick(self, now: float) -> list:
        """Timers: (re)association, retries, keep-alive, poll renewal, the scale fallback."""
        events: list = []
        try:
            events += self._tick(now)
        except Exception as exc:  # a bug here must not kill the reader thread
            self._problem(f"tick failed: {exc!r}", events)
        return events

    def receive(self, frame: Frame, now: float) -> list:
        """Handle one frame from the monitor; returns events, queues replies. Never raises."""
        events: list = []
        self.stats.frames_in += 1
        try:
            self._receive(frame.user_data, now, events)
        except PduError as exc:
            self.stats.bad_pdus += 1
            self.stats.last_problem = f"unparsable message: {exc}"
        except Exception as exc:  # anything else is a bug in a parser: count it, keep going
            self.stats.bad_pdus += 1
            self._problem(f"message handling failed: {exc!r}", events)
        return events

    # -- internals -------------------------------------------------------------------------------
    def _to(self, state: SessionState, now: float) -> None:
        if state != self.state:
            log.debug("intellivue session: %s -> %s", self.state.value, state.value)
        self.state = state
        self._state_since = now

    def _send(self, user_data: bytes) -> None:
        self._out.append(encode_frame(user_data))

    def _problem(self, text: str, events: list) -> None:
        self.stats.last_problem = text
        events.append(Problem(text))

    def _next_poll_number(self) -> int:
        self._poll_number = self._poll_number % 0xFFFF + 1
        return self._poll_number

    def _request(self) -> AssociationRequest:
        c = self.config
        ext = POLL_EXT_PERIOD_RTSA | (POLL_EXT_PERIOD_NU_1SEC if c.numerics else 0)
        profile = PollProfile(min_poll_period=int(c.min_poll_period_s * RT_TICKS_PER_S), ext_options=ext)
        return AssociationRequest(UserInfo(profile=profile))

    def _tick(self, now: float) -> list:
        events: list = []
        c = self.config
        st = self.state
        if st == SessionState.CLOSED:
            return events
        if st == SessionState.IDLE and now >= self._due.get("associate", now):
            if self._abort_first:
                self._send(encode_association(Abort()))
                self._abort_first = False
            self._send(encode_association(self._request()))
            self._to(SessionState.ASSOCIATING, now)
            self._due["associate"] = now + c.retry_s
        elif st == SessionState.ASSOCIATING and now >= self._due.get("associate", now):
            self._send(encode_association(self._request()))
            self._due["associate"] = now + c.retry_s
        elif st == SessionState.WAIT_CREATE and now - self._state_since > 3 * c.retry_s:
            # associated but the monitor never announced its MDS: start over
            events += self.link_lost(now, "no MDS Create Event after association")
        elif st == SessionState.CONFIGURING:
            if now >= self._due.get("configure", now):
                self._configure_step(now)
            if not self.specs and now - self._state_since > c.scale_wait_s and not self._fell_back:
                self._fell_back = True  # once per association
                self._problem("monitor did not send the waves' static attributes; using the documented IntelliVue defaults", events)
                self._start_streaming(now, events, scale_source="default")
        elif st == SessionState.STREAMING:
            if now >= self._due.get("repoll", now):
                self._send_extended_polls()
                self._due["repoll"] = now + c.repoll_s
            if now >= self._due.get("keepalive", now):
                self._send(encode_poll_request(PollRequest(self._ids.new("keepalive"), self._next_poll_number(), NOM_MOC_VMS_MDS, NOM_ATTR_GRP_ALL)))
                self._due["keepalive"] = now + c.keepalive_s
        elif st == SessionState.RELEASING and now - self._state_since > c.retry_s:
            self._to(SessionState.CLOSED, now)
        if len(self._ids.open) > 4096:  # requests the monitor never answered: forget them
            self._ids.open.clear()
        return events

    def _configure_step(self, now: float) -> None:
        """Send (again) the configuration request that is still unanswered."""
        if self._config_step == "priority":
            labels = [lab for lab in (label_for(w) for w in self.config.waves) if lab is not None]
            self._send(encode_set_priority_list(self._ids.new("priority"), labels))
        else:
            self._static_parts = {}
            self._send(encode_poll_request(PollRequest(self._ids.new("static"), self._next_poll_number(), NOM_MOC_VMO_METRIC_SA_RT, NOM_ATTR_GRP_VMO_STATIC)))
        self._due["configure"] = now + self.config.retry_s

    def _send_extended_polls(self) -> None:
        period = int(self.config.poll_active_s * RT_TICKS_PER_S)
        kinds = [(NOM_MOC_VMO_METRIC_SA_RT, NOM_ATTR_GRP_METRIC_VAL_OBS, "waves")]
        if self.config.numerics:
            kinds.append((NOM_MOC_VMO_METRIC_NU, NOM_ATTR_GRP_METRIC_VAL_OBS, "numerics"))
        if self.config.alarms:
            kinds.append((NOM_MOC_VMO_AL_MON, NOM_ATTR_GRP_ALL, "alarms"))
        for code, grp, purpose in kinds:
            self._send(encode_poll_request(PollRequest(self._ids.new(purpose), self._next_poll_number(), code, grp, True, period)))

    def _start_streaming(self, now: float, events: list, scale_source: str) -> None:
        self._to(SessionState.STREAMING, now)
        self.scale_source = scale_source
        self._due["repoll"] = now
        self._due["keepalive"] = now + self.config.keepalive_s
        events.append(WavesReady(tuple(self.specs.values()), self._granted_labels, scale_source))

    def _receive(self, data: bytes, now: float, events: list) -> None:
        if not data:
            raise PduError("empty message")
        if not is_data_message(data):
            self._association_message(parse_association(data), now, events)
            return
        msg = parse_message(data)
        if msg.ro_type == ROER_APDU:
            self.stats.remote_errors += 1
            purpose = self._ids.open.pop(msg.invoke_id, "?")
            self._problem(f"monitor answered {purpose} request {msg.invoke_id} with error {msg.command_type}", events)
            if purpose in ("priority", "static"):  # ask again after the usual wait
                self._due["configure"] = now + self.config.retry_s
            return
        if msg.ro_type == RORS_APDU:
            self._ids.open.pop(msg.invoke_id, None)
        if msg.ro_type == ROIV_APDU and msg.command_type in (CMD_CONFIRMED_EVENT_REPORT, CMD_EVENT_REPORT):
            self._event_report(msg, now, events)
        elif msg.ro_type in (RORS_APDU, ROLRS_APDU) and msg.command_type == CMD_CONFIRMED_ACTION:
            self._poll_result(msg, now, events)
        elif msg.ro_type == RORS_APDU and msg.command_type == CMD_CONFIRMED_SET:
            result = parse_set_result(msg)
            if self.state == SessionState.CONFIGURING and self._config_step == "priority":
                self._granted_labels = result.text_ids()
                self._config_step = "static"
                self._configure_step(now)
        else:
            self.stats.unexpected += 1

    def _association_message(self, msg, now: float, events: list) -> None:
        if isinstance(msg, AssociationResponse):
            if self.state in (SessionState.CLOSED, SessionState.RELEASING):
                self.stats.unexpected += 1
                return
            # in any other state the monitor has (re)associated, e.g. answering a retried request
            # that crossed its first answer on the line: follow it, it will announce its MDS again
            info = msg.user_info
            granted = info.profile.ext_options if info.profile is not None else None
            if granted is None or not granted & POLL_EXT_PERIOD_RTSA:
                self._problem("the monitor did not grant wave export (POLL_EXT_PERIOD_RTSA); check its Data Export settings", events)
            self.granted = info
            self.stats.associations += 1
            self._to(SessionState.WAIT_CREATE, now)
            self._due = {}
            # the wave descriptions of an earlier association stay until this one's static poll
            # replaces them: replies still on the line are decoded with them
            events.append(Associated(info))
        elif isinstance(msg, AssociationRefuse):
            self.stats.refused += 1
            self._problem("the monitor refused the association (another client, or Data Export off on this port?)", events)
            self._to(SessionState.IDLE, now)
            self._due["associate"] = now + 2 * self.config.retry_s
        elif isinstance(msg, Abort):
            self.stats.aborts_received += 1
            if self.state not in (SessionState.IDLE, SessionState.CLOSED):
                events.append(Disassociated("monitor aborted the association"))
                self._to(SessionState.IDLE, now)
                self._due = {"associate": now + 0.5}
        elif isinstance(msg, ReleaseResponse):
            if self.state == SessionState.RELEASING:
                self._to(SessionState.CLOSED, now)
                events.append(Disassociated("released"))
        elif isinstance(msg, ReleaseRequest):
            self._send(encode_association(ReleaseResponse()))
            events.append(Disassociated("monitor released the association"))
            self._to(SessionState.IDLE, now)
            self._due = {"associate": now + self.config.retry_s}
        else:
            self.stats.unexpected += 1

    def _event_report(self, msg, now: float, events: list) -> None:
        create: MdsCreate = parse_mds_create(msg)
        # confirm it in any associated state: the monitor repeats it until confirmed
        if msg.command_type == CMD_CONFIRMED_EVENT_REPORT:
            self._send(encode_mds_create_result(create))
        a = create.attributes
        rel = int.from_bytes(a[NOM_ATTR_TIME_REL], "big") if len(a.get(NOM_ATTR_TIME_REL, b"")) == 4 else create.event_time
        model = ""
        if NOM_ATTR_ID_MODEL in a:
            try:
                r = Reader(a[NOM_ATTR_ID_MODEL])
                parts = [r.take(r.u16()).split(b"\0", 1)[0].decode("ascii", "replace") for _ in range(2)]
                model = " ".join(p for p in parts if p)
            except PduError:
                model = ""
        if self.state not in (SessionState.WAIT_CREATE, SessionState.CONFIGURING, SessionState.STREAMING) or not self._announced(create):
            return  # a repeat (the monitor resends until it sees our result), or no association of ours
        self.monitor = MonitorInfo(read_string(a.get(NOM_ATTR_ID_BED_LABEL, b"")), model,
                                   read_absolute_time(a.get(NOM_ATTR_TIME_ABS, b"")), rel, create.event_time)
        events.append(self.monitor)
        # a new MDS Create means a new association at the monitor: its polls are gone, configure again
        self._to(SessionState.CONFIGURING, now)
        self._due = {}
        self._config_step = "priority"
        self._fell_back = False
        self._configure_step(now)

    def _announced(self, create: MdsCreate) -> bool:
        """True for the first MDS Create of an association (a monitor repeats it until confirmed)."""
        if self.state == SessionState.WAIT_CREATE:
            self._create_key = (create.invoke_id, create.event_time, self.stats.associations)
            return True
        key = (create.invoke_id, create.event_time, self.stats.associations)
        if key == self._create_key:
            return False  # a repeat of the one this configuration answers
        self._create_key = key
        return True

    def _poll_result(self, msg, now: float, events: list) -> None:
        reply = parse_poll_reply(msg)
        code = reply.obj_code
        if reply.action == NOM_ACT_POLL_MDIB_DATA:
            if code == NOM_MOC_VMO_METRIC_SA_RT and self.state == SessionState.CONFIGURING:
                for _ctx, obs in reply.observations:
                    spec = wave_spec(obs.handle, obs.attributes)
                    if spec.label is not None:
                        self._static_parts[spec.handle] = spec
                if msg.ro_type == RORS_APDU:  # the last (or only) part
                    self.specs = dict(self._static_parts)
                    if not self.specs:
                        self._problem("the monitor exports no wave (is ECG connected, Data Export waves enabled?)", events)
                        self._due["configure"] = now + self.config.retry_s
                        return
                    self._start_streaming(now, events, scale_source="monitor")
            return  # keep-alive replies (MDS) carry nothing we use
        if self.state != SessionState.STREAMING and not self.specs:
            self.stats.unexpected += 1
            return
        # Outside STREAMING with the waves already described (a link that came back while we
        # re-associate: the monitor still serves the old association's polls) the data is used
        # all the same: each reply carries its own RelativeTime, so it lands at its exact index.
        if code == NOM_MOC_VMO_METRIC_SA_RT:
            waves = [w for _ctx, obs in reply.observations for w in wave_observations(obs.handle, obs.attributes)]
            self.stats.wave_replies += 1
            if waves:
                events.append(WaveData(reply.rel_time, reply.sequence_no, tuple(waves)))
        elif code == NOM_MOC_VMO_METRIC_NU:
            values = [n for _ctx, obs in reply.observations for n in numeric_observations(obs.handle, obs.attributes)]
            self.stats.numeric_replies += 1
            events.append(NumericData(reply.rel_time, tuple(values)))
        elif code == NOM_MOC_VMO_AL_MON:
            entries = [a for _ctx, obs in reply.observations for a in alarm_entries(obs.attributes)]
            self.stats.alarm_replies += 1
            events.append(AlarmData(reply.rel_time, tuple(entries)))
        else:
            self.stats.unexpected += 1

    def spec_for(self, obs: WaveObservation) -> WaveSpec | None:
        """The static attributes of an observation's wave (falling back to the documented defaults
        only when the session is running on them)."""
        spec = self.specs.get(obs.handle)
        if spec is not None and spec.physio_id in (obs.physio_id, None):
            return spec
        for s in self.specs.values():  # handles may be renumbered by a monitor restart; the id is stable
            if s.physio_id == obs.physio_id:
                return s
        if self.scale_source == "default":
            spec = default_spec(obs.handle, obs.physio_id)
            if spec is not None:
                self.specs[obs.handle] = spec
            return spec
        return None
