"""Association control: the request a client sends, and the monitor's accept, refuse, release and abort.

These messages carry the ISO session/presentation/ACSE envelope of the Programming Guide
("Definition of the Association Control Protocol") around one ``MDSEUserInfoStd`` that negotiates
protocol version, polling profile, MTU and the poll-profile extensions (real-time numerics, waves).
The envelope bytes are the guide's fixed encodings; only the user information varies. They
travel in the same RS232 frames as data messages. The captures hold none of them (the host side
was not logged, and the monitor's accept precedes the logged MDS Create Event), so these are
built from the guide and checked here by round trips and against open implementations' bytes,
not against an MP90.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_bridge.intellivue.datatypes import PduError, Reader, Writer, read_attribute_list, write_attribute_list
from firmware_bridge.intellivue.nomenclature import NOM_ATTR_POLL_PROFILE_EXT, NOM_POLL_PROFILE_SUPPORT

# session header types (first byte of the user data)
CN_SPDU_SI = 0x0D  # connect: association request
AC_SPDU_SI = 0x0E  # accept: association response
RF_SPDU_SI = 0x0C  # refuse
FN_SPDU_SI = 0x09  # finish: release request
DN_SPDU_SI = 0x0A  # disconnect: release response
AB_SPDU_SI = 0x19  # abort
ASSOCIATION_TYPES = (CN_SPDU_SI, AC_SPDU_SI, RF_SPDU_SI, FN_SPDU_SI, DN_SPDU_SI, AB_SPDU_SI)

MDDL_VERSION1 = 0x80000000
NOMEN_VERSION = 0x40000000
SYST_CLIENT = 0x80000000
SYST_SERVER = 0x00800000
HOT_START = 0x80000000
WARM_START = 0x40000000
POLL_PROFILE_REV_0 = 0x80000000
P_OPT_DYN_CREATE_OBJECTS = 0x40000000
P_OPT_DYN_DELETE_OBJECTS = 0x20000000
POLL_EXT_PERIOD_NU_1SEC = 0x80000000
POLL_EXT_PERIOD_RTSA = 0x08000000
RT_TICKS_PER_S = 8000  # RelativeTime runs at 1/8 ms

# session parameters of connect and accept: the guide's fixed values (protocol options, version,
# and the presentation context 2 that data messages then use)
_SESSION_DATA = bytes.fromhex("05 08 13 01 00 16 01 02 80 00 14 02 00 02")
# presentation and ACSE envelope of the association request, up to the user information
_REQUEST_HEADER = bytes.fromhex(
    "31 80 a0 80 80 01 01 00 00 a2 80 a0 03 00 00 01 a4 80 30 80 02 01 01 06 04 52 01 00 01 30 80"
    " 06 02 51 01 00 00 00 00 30 80 02 01 02 06 0c 2a 86 48 ce 14 02 01 00 00 00 01 01 30 80 06 0c"
    " 2a 86 48 ce 14 02 01 00 00 00 02 01 00 00 00 00 00 00 61 80 30 80 02 01 01 a0 80 60 80 a1 80"
    " 06 0c 2a 86 48 ce 14 02 01 00 00 00 03 01 00 00 be 80 28 80 06 0c 2a 86 48 ce 14 02 01 00 00"
    " 00 01 01 02 01 02 81"
)
# and of the association response (accept)
_ACCEPT_HEADER = bytes.fromhex(
    "31 80 a0 80 80 01 01 00 00 a2 80 a0 03 00 00 01 a5 80 30 80 80 01 00 81 02 51 01 00 00 30 80"
    " 80 01 00 81 0c 2a 86 48 ce 14 02 01 00 00 00 02 01 00 00 00 00 61 80 30 80 02 01 01 a0 80 61"
    " 80 a1 80 06 0c 2a 86 48 ce 14 02 01 00 00 00 03 01 00 00 a2 03 02 01 00 a3 05 a1 03 02 01 00"
    " be 80 28 80 02 01 02 81"
)
_TRAILER = bytes(16)  # end-of-contents octets closing the indefinite-length encodings above
_USER_INFO_MARK = bytes.fromhex("be 80 28 80")
# release request / response and abort: fixed messages
_RELEASE_REQUEST = bytes.fromhex("09 18 c1 16 61 80 30 80 02 01 01 a0 80 62 80 80 01 00 00 00 00 00 00 00 00 00")
_RELEASE_RESPONSE = bytes.fromhex("0a 18 c1 16 61 80 30 80 02 01 01 a0 80 63 80 80 01 00 00 00 00 00 00 00 00 00")
_ABORT = bytes.fromhex(
    "19 2e 11 01 03 c1 29 a0 80 a0 80 30 80 02 01 01 06 02 51 01 00 00 00 00 61 80 30 80 02 01 01 a0 80"
    " 64 80 80 01 01 00 00 00 00 00 00 00 00 00 00"
)
_REFUSE = bytes.fromhex("0c 03 32 01 00")


@dataclass(frozen=True)
class PollProfile:
    """PollProfileSupport plus the PollProfileExt options (None: the extension is not offered/granted)."""

    revision: int = POLL_PROFILE_REV_0
    min_poll_period: int = RT_TICKS_PER_S  # RelativeTime ticks; the association times out after ~10 s of client silence below 3.3 s
    max_mtu_rx: int = 1000  # the MIB/RS232 maximum
    max_mtu_tx: int = 1000
    max_bw_tx: int = 0xFFFFFFFF  # "no estimation possible"
    options: int = P_OPT_DYN_CREATE_OBJECTS | P_OPT_DYN_DELETE_OBJECTS
    ext_options: int | None = POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_PERIOD_RTSA


@dataclass(frozen=True)
class UserInfo:
    """MDSEUserInfoStd: what each side supports (request) or what was agreed (response)."""

    protocol_version: int = MDDL_VERSION1
    nomenclature_version: int = NOMEN_VERSION
    functional_units: int = 0
    system_type: int = SYST_CLIENT
    startup_mode: int = HOT_START
    profile: PollProfile | None = field(default_factory=PollProfile)


@dataclass(frozen=True)
class AssociationRequest:
    user_info: UserInfo = field(default_factory=UserInfo)


@dataclass(frozen=True)
class AssociationResponse:
    user_info: UserInfo


@dataclass(frozen=True)
class AssociationRefuse:
    pass


@dataclass(frozen=True)
class ReleaseRequest:
    pass


@dataclass(frozen=True)
class ReleaseResponse:
    pass


@dataclass(frozen=True)
class Abort:
    pass


AssociationMessage = AssociationRequest | AssociationResponse | AssociationRefuse | ReleaseRequest | ReleaseResponse | Abort


# -- length encodings ------------------------------------------------------------------------
def encode_li(n: int) -> bytes:
    """Session/presentation length indicator: one byte up to 254, else 0xFF and a u16."""
    return bytes((n,)) if n <= 254 else b"\xff" + n.to_bytes(2, "big")


def read_li(r: Reader) -> int:
    first = r.u8()
    return r.u16() if first == 0xFF else first


def encode_asn_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    return bytes((0x82,)) + n.to_bytes(2, "big")


def read_asn_length(r: Reader) -> int:
    first = r.u8()
    if first < 0x80:
        return first
    if first == 0x81:
        return r.u8()
    if first == 0x82:
        return r.u16()
    raise PduError(f"unsupported ASN.1 length form 0x{first:02x}")


# -- MDSEUserInfoStd ---------------------------------------------------------------------------
def encode_user_info(info: UserInfo) -> bytes:
    w = Writer()
    w.u32(info.protocol_version).u32(info.nomenclature_version).u32(info.functional_units)
    w.u32(info.system_type).u32(info.startup_mode)
    write_attribute_list(w, [])  # option_list: no further options are defined
    profiles = []
    if info.profile is not None:
        p = info.profile
        pw = Writer()
        pw.u32(p.revision).u32(p.min_poll_period).u32(p.max_mtu_rx).u32(p.max_mtu_tx).u32(p.max_bw_tx).u32(p.options)
        packages = []
        if p.ext_options is not None:
            ew = Writer()
            ew.u32(p.ext_options)
            write_attribute_list(ew, [])
            packages.append((NOM_ATTR_POLL_PROFILE_EXT, ew.bytes()))
        write_attribute_list(pw, packages)
        profiles.append((NOM_POLL_PROFILE_SUPPORT, pw.bytes()))
    write_attribute_list(w, profiles)
    return w.bytes()


def parse_user_info(r: Reader) -> UserInfo:
    pv, nv, fu, st, sm = r.u32(), r.u32(), r.u32(), r.u32(), r.u32()
    read_attribute_list(r)  # option_list
    profiles = read_attribute_list(r)
    profile = None
    raw = profiles.get(NOM_POLL_PROFILE_SUPPORT)
    if raw is not None:
        pr = Reader(raw)
        rev, mpp, rx, tx, bw, opts = pr.u32(), pr.u32(), pr.u32(), pr.u32(), pr.u32(), pr.u32()
        packages = read_attribute_list(pr)
        ext = None
        if NOM_ATTR_POLL_PROFILE_EXT in packages:
            ext = Reader(packages[NOM_ATTR_POLL_PROFILE_EXT]).u32()
        profile = PollProfile(rev, mpp, rx, tx, bw, opts, ext)
    return UserInfo(pv, nv, fu, st, sm, profile)


# -- whole messages ----------------------------------------------------------------------------
def _wrap(session_type: int, header: bytes, user_info: UserInfo) -> bytes:
    info = encode_user_info(user_info)
    presentation = header + encode_asn_length(len(info)) + info + _TRAILER
    session = _SESSION_DATA + b"\xc1" + encode_li(len(presentation)) + presentation
    return bytes((session_type,)) + encode_li(len(session)) + session


def encode_association(msg: AssociationMessage) -> bytes:
    """The user data (frame payload) of an association control message."""
    if isinstance(msg, AssociationRequest):
        return _wrap(CN_SPDU_SI, _REQUEST_HEADER, msg.user_info)
    if isinstance(msg, AssociationResponse):
        return _wrap(AC_SPDU_SI, _ACCEPT_HEADER, msg.user_info)
    if isinstance(msg, AssociationRefuse):
        return _REFUSE
    if isinstance(msg, ReleaseRequest):
        return _RELEASE_REQUEST
    if isinstance(msg, ReleaseResponse):
        return _RELEASE_RESPONSE
    if isinstance(msg, Abort):
        return _ABORT
    raise TypeError(f"not an association message: {msg!r}")


def _user_info_of(data: bytes) -> UserInfo:
    """Find the MDSEUserInfoStd in a connect/accept: after ``BE 80 28 80``, skip the direct-reference
    and indirect-reference elements (tags 0x06, 0x02) up to the ``0x81`` that opens the user data."""
    at = data.find(_USER_INFO_MARK)
    if at < 0:
        raise PduError("association message without user information")
    r = Reader(data, at + len(_USER_INFO_MARK))
    while True:
        tag = r.u8()
        if tag == 0x81:
            break
        if tag not in (0x02, 0x06):
            raise PduError(f"unexpected element 0x{tag:02x} before the user information")
        r.take(r.u8())
    n = read_asn_length(r)
    return parse_user_info(r.sub(n))


def parse_association(data: bytes) -> AssociationMessage:
    """An association control message from a frame's user data; ``PduError`` if it is not one."""
    if not data:
        raise PduError("empty message")
    kind = data[0]
    r = Reader(data, 1)
    length = read_li(r)
    if length > r.remaining:
        raise PduError(f"session length {length} exceeds the {r.remaining} bytes present")
    if kind == CN_SPDU_SI:
        return AssociationRequest(_user_info_of(data))
    if kind == AC_SPDU_SI:
        return AssociationResponse(_user_info_of(data))
    if kind == RF_SPDU_SI:
        return AssociationRefuse()
    if kind == FN_SPDU_SI:
        return ReleaseRequest()
    if kind == DN_SPDU_SI:
        return ReleaseResponse()
    if kind == AB_SPDU_SI:
        return Abort()
    raise PduError(f"unknown session header 0x{kind:02x}")


def accept_for(request: AssociationRequest, *, min_poll_period: int | None = None, mtu: int = 1000,
               ext_supported: int = POLL_EXT_PERIOD_NU_1SEC | POLL_EXT_PERIOD_RTSA) -> AssociationResponse:
    """The response a monitor builds from a request (the guide's negotiation rules): highest common
    versions, SYST_SERVER, MTUs the minimum of both sides, the offered extension bits it supports."""
    req = request.user_info
    prof = req.profile or PollProfile()
    ext = None
    if prof.ext_options is not None:
        # one numeric source per association: the one with the smallest period among those offered
        numeric = next((b for b in (POLL_EXT_PERIOD_NU_1SEC, 0x40000000, 0x20000000, 0x10000000) if prof.ext_options & b), 0)
        ext = (numeric | (prof.ext_options & POLL_EXT_PERIOD_RTSA)) & ext_supported
    granted = PollProfile(
        revision=POLL_PROFILE_REV_0,
        min_poll_period=max(prof.min_poll_period, min_poll_period or 0),
        max_mtu_rx=min(prof.max_mtu_rx, mtu),
        max_mtu_tx=min(prof.max_mtu_tx, mtu),
        max_bw_tx=0xFFFFFFFF,
        options=P_OPT_DYN_CREATE_OBJECTS | P_OPT_DYN_DELETE_OBJECTS,
        ext_options=ext,
    )
    info = UserInfo(MDDL_VERSION1, NOMEN_VERSION, req.functional_units & 0, SYST_SERVER, WARM_START, granted)
    return AssociationResponse(info)


def association_timeout_s(min_poll_period_ticks: int) -> float:
    """How long the monitor waits for any client message before it aborts (guide's table)."""
    period = min_poll_period_ticks / RT_TICKS_PER_S
    if period < 3.3:
        return 10.0
    if period <= 43.0:
        return 3.0 * period
    return 130.0
