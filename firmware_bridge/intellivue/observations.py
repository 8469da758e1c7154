"""What poll replies carry, as typed values: wave samples and their scale, numerics, alarms.

Waves: ``NOM_ATTR_SA_VAL_OBS`` (or its compound form) holds a physio id, a measurement state and
an array of big-endian samples (128 per 256 ms for a 500 Hz ECG lead on the MP90 captures). The
counts become physical values only with the wave's static attributes, which the client polls
for separately (``NOM_ATTR_GRP_VMO_STATIC``): the sample period, the sample array specification
(significant bits, flags), the scale and range (absolute value <-> scaled value, in the unit
code's unit), optionally a calibration bar and fixed-value masks (invalid, pacer).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from firmware_bridge.intellivue.datatypes import PduError, Reader, decode_float, encode_float, read_string, read_text_id_list, Writer
from firmware_bridge.intellivue.nomenclature import (
    ECG_LEADS,
    GEN_ALMON_INFO,
    MICROVOLT_FACTOR,
    NOM_ATTR_AL_MON_P_AL_LIST,
    NOM_ATTR_AL_MON_T_AL_LIST,
    NOM_ATTR_ID_HANDLE,
    NOM_ATTR_ID_LABEL,
    NOM_ATTR_NU_CMPD_VAL_OBS,
    NOM_ATTR_NU_VAL_OBS,
    NOM_ATTR_SA_CALIB_I16,
    NOM_ATTR_SA_CMPD_VAL_OBS,
    NOM_ATTR_SA_FIXED_VAL_SPECN,
    NOM_ATTR_SA_SPECN,
    NOM_ATTR_SA_VAL_OBS,
    NOM_ATTR_SCALE_SPECN_I16,
    NOM_ATTR_TIME_PD_SAMP,
    NOM_ATTR_UNIT_CODE,
    SA_EXT_VAL_RANGE,
    SA_FIX_INVALID_MASK,
    SA_FIX_PACER_MASK,
    STR_ALMON_INFO,
    alert_state_names,
    alert_type_name,
    event_name,
    scada_name,
    unit_symbol,
    OBJ_NAMES,
)


# -- waves --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WaveObservation:
    handle: int
    physio_id: int
    state: int  # MeasurementState; the samples are valid if its first octet is 0
    samples: np.ndarray  # uint16, as sent

    @property
    def valid(self) -> bool:
        return (self.state & 0xFF00) == 0


def _sa_obs(handle: int, r: Reader) -> WaveObservation:
    physio, state, n = r.u16(), r.u16(), r.u16()
    raw = r.take(n)
    return WaveObservation(handle, physio, state, np.frombuffer(raw[: n - n % 2], dtype=">u2").astype(np.uint16))


def _observed(handle: int, attrs: dict[int, bytes], single: int, compound: int, read_one) -> list:
    """The values of an observed-value attribute and of its compound form (count, length, values)."""
    out = []
    if single in attrs:
        out.append(read_one(handle, Reader(attrs[single])))
    if compound in attrs:
        r = Reader(attrs[compound])
        count, length = r.u16(), r.u16()
        body = r.sub(length)
        out += [read_one(handle, body) for _ in range(count)]
    return out


def wave_observations(handle: int, attrs: dict[int, bytes]) -> list[WaveObservation]:
    return _observed(handle, attrs, NOM_ATTR_SA_VAL_OBS, NOM_ATTR_SA_CMPD_VAL_OBS, _sa_obs)


def encode_sa_obs(physio_id: int, samples: np.ndarray, state: int = 0) -> bytes:
    data = np.asarray(samples, dtype=">u2").tobytes()
    return physio_id.to_bytes(2, "big") + state.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


@dataclass(frozen=True)
class ScaleRange:
    """ScaleRangeSpec16: scaled ``lower..upper`` map linearly to absolute ``lower..upper`` (unit of the unit code)."""

    lower_absolute: float
    upper_absolute: float
    lower_scaled: int
    upper_scaled: int

    @property
    def physical(self) -> bool:
        return not (math.isnan(self.lower_absolute) or math.isnan(self.upper_absolute)) and self.upper_scaled != self.lower_scaled

    def gain_offset(self, factor: float = 1.0) -> tuple[float, float]:
        """(absolute units per count, absolute value of count 0), times ``factor``.

        Computed in exact decimal arithmetic (the FLOATType values are decimals), so the IntelliVue
        ECG scale gives exactly 5 uV per count and -40960 uV at count 0, and a sample on the grid
        converts without rounding noise."""
        lo, hi, f = Fraction(repr(self.lower_absolute)), Fraction(repr(self.upper_absolute)), Fraction(repr(factor))
        gain = (hi - lo) / (self.upper_scaled - self.lower_scaled)
        return float(gain * f), float((lo - self.lower_scaled * gain) * f)

    @staticmethod
    def read(raw: bytes) -> "ScaleRange":
        r = Reader(raw)
        return ScaleRange(decode_float(r.u32()), decode_float(r.u32()), r.u16(), r.u16())

    def encode(self) -> bytes:
        w = Writer()
        w.u32(encode_float(self.lower_absolute)).u32(encode_float(self.upper_absolute)).u16(self.lower_scaled).u16(self.upper_scaled)
        return w.bytes()


@dataclass(frozen=True)
class WaveSpec:
    """A wave object's static attributes: what its counts mean and how often they come."""

    handle: int
    label: int | None  # TextId (NLS_NOM_...), e.g. 0x00020101 for ECG I
    sample_period_ticks: int | None  # RelativeTime ticks (1/8 ms) between samples
    array_size: int | None = None
    sample_size: int = 16
    significant_bits: int = 16
    flags: int = 0
    scale: ScaleRange | None = None
    unit_code: int | None = None
    calibration: tuple[float, float, int, int, int, int] | None = None  # SaCalData16
    fixed_values: tuple[tuple[int, int], ...] = ()  # (SaFixedValId, value or mask)

    @property
    def physio_id(self) -> int | None:
        return None if self.label is None else self.label & 0xFFFF

    @property
    def fs(self) -> float | None:
        return 8000.0 / self.sample_period_ticks if self.sample_period_ticks else None

    @property
    def lead(self) -> str | None:
        """Canonical lead name if this is an ECG lead wave."""
        return ECG_LEADS.get(self.physio_id) if self.label is not None and (self.label >> 16) == 0x0002 else None

    @property
    def value_mask(self) -> int:
        """Bits that carry the sample value (the others are markers when SA_EXT_VAL_RANGE is set)."""
        if self.flags & SA_EXT_VAL_RANGE and 0 < self.significant_bits < 16:
            return (1 << self.significant_bits) - 1
        return 0xFFFF

    def microvolts_per_count(self) -> tuple[float, float] | None:
        """(uV per count, uV at count 0) for a voltage wave with a physical scale, else None."""
        if self.scale is None or not self.scale.physical or self.unit_code not in MICROVOLT_FACTOR:
            return None
        return self.scale.gain_offset(MICROVOLT_FACTOR[self.unit_code])

    def describe(self) -> str:
        bits = f"{self.significant_bits}/{self.sample_size} bits"
        scale = "no scale"
        if self.scale is not None:
            s = self.scale
            scale = f"{s.lower_absolute:g}..{s.upper_absolute:g} {unit_symbol(self.unit_code or 0)} over {s.lower_scaled}..{s.upper_scaled}"
        return f"handle {self.handle} {scada_name(self.physio_id or 0)} {self.fs or 0:g} Hz {bits} {scale}"


def wave_spec(handle: int, attrs: dict[int, bytes]) -> WaveSpec:
    """The static attributes of one wave object (those absent stay None/defaults)."""
    label = int.from_bytes(attrs[NOM_ATTR_ID_LABEL], "big") if len(attrs.get(NOM_ATTR_ID_LABEL, b"")) == 4 else None
    if NOM_ATTR_ID_HANDLE in attrs and len(attrs[NOM_ATTR_ID_HANDLE]) == 2:
        handle = int.from_bytes(attrs[NOM_ATTR_ID_HANDLE], "big")
    period = int.from_bytes(attrs[NOM_ATTR_TIME_PD_SAMP], "big") if len(attrs.get(NOM_ATTR_TIME_PD_SAMP, b"")) == 4 else None
    spec = WaveSpec(handle, label, period or None)
    kw: dict = {}
    if len(attrs.get(NOM_ATTR_SA_SPECN, b"")) >= 6:
        r = Reader(attrs[NOM_ATTR_SA_SPECN])
        kw.update(array_size=r.u16(), sample_size=r.u8(), significant_bits=r.u8(), flags=r.u16())
    if len(attrs.get(NOM_ATTR_SCALE_SPECN_I16, b"")) >= 12:
        kw["scale"] = ScaleRange.read(attrs[NOM_ATTR_SCALE_SPECN_I16])
    if len(attrs.get(NOM_ATTR_UNIT_CODE, b"")) == 2:
        kw["unit_code"] = int.from_bytes(attrs[NOM_ATTR_UNIT_CODE], "big")
    if len(attrs.get(NOM_ATTR_SA_CALIB_I16, b"")) >= 16:
        r = Reader(attrs[NOM_ATTR_SA_CALIB_I16])
        kw["calibration"] = (decode_float(r.u32()), decode_float(r.u32()), r.u16(), r.u16(), r.u16(), r.u16())
    if NOM_ATTR_SA_FIXED_VAL_SPECN in attrs:
        r = Reader(attrs[NOM_ATTR_SA_FIXED_VAL_SPECN])
        count, length = r.u16(), r.u16()
        body = r.sub(length)
        kw["fixed_values"] = tuple((body.u16(), body.u16()) for _ in range(count))
    return dataclasses.replace(spec, **kw)


def decode_samples(spec: WaveSpec, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, invalid, pacer) for one observation: values are the masked counts scaled to the
    physical unit (microvolts for ECG) when a scale is known, else the masked counts as floats;
    ``invalid`` / ``pacer`` come from the fixed-value masks."""
    c = np.asarray(counts, dtype=np.uint16)
    invalid = np.zeros(c.shape, dtype=bool)
    pacer = np.zeros(c.shape, dtype=bool)
    for vid, val in spec.fixed_values:
        if vid == SA_FIX_INVALID_MASK and val:
            invalid |= (c & val) == val
        elif vid == SA_FIX_PACER_MASK and val:
            pacer |= (c & val) == val
    v = (c & spec.value_mask).astype(np.float64)
    uv = spec.microvolts_per_count()
    if uv is not None:
        v = v * uv[0] + uv[1]
    elif spec.scale is not None and spec.scale.physical:
        gain, offset = spec.scale.gain_offset()
        v = v * gain + offset
    out = v.astype(np.float32)
    out[invalid] = np.nan
    return out, invalid, pacer


# -- numerics -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericObservation:
    handle: int
    physio_id: int
    state: int
    unit_code: int
    value: float

    @property
    def valid(self) -> bool:
        return (self.state & 0xFF00) == 0 and not math.isnan(self.value)

    @property
    def name(self) -> str:
        return scada_name(self.physio_id)

    @property
    def unit(self) -> str:
        return unit_symbol(self.unit_code)


def _nu_obs(handle: int, r: Reader) -> NumericObservation:
    return NumericObservation(handle, r.u16(), r.u16(), r.u16(), decode_float(r.u32()))


def numeric_observations(handle: int, attrs: dict[int, bytes]) -> list[NumericObservation]:
    return _observed(handle, attrs, NOM_ATTR_NU_VAL_OBS, NOM_ATTR_NU_CMPD_VAL_OBS, _nu_obs)


# -- alarms ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlarmEntry:
    """One DevAlarmEntry of the monitor's physiological (``P``) or technical (``T``) alarm list."""

    kind: str  # "P" or "T"
    source: int
    code: int
    alert_type: int
    state: int
    text: str = ""
    text_id: int | None = None

    @property
    def source_name(self) -> str:
        # the least significant bit of the code says which partition the source comes from
        return OBJ_NAMES.get(self.source, f"0x{self.source:04X}") if self.code & 1 else scada_name(self.source)

    @property
    def code_name(self) -> str:
        return event_name(self.code & ~1)

    @property
    def type_name(self) -> str:
        return alert_type_name(self.alert_type)

    @property
    def key(self) -> tuple[str, int, int, int]:
        """Identity of an alarm across polls (its state bits may change while it stays active)."""
        return (self.kind, self.source, self.code, self.alert_type)

    def to_dict(self) -> dict:
        return {"list": self.kind, "source": self.source_name, "code": self.code_name, "type": self.type_name,
                "alert_state": list(alert_state_names(self.state)), "text": self.text}


def _alarm_list(kind: str, raw: bytes) -> list[AlarmEntry]:
    r = Reader(raw)
    count, length = r.u16(), r.u16()
    body = r.sub(length)
    out = []
    for _ in range(count):
        src, code, atype, state = body.u16(), body.u16(), body.u16(), body.u16()
        body.take(6)  # the object that raised it
        info_id, ilen = body.u16(), body.u16()
        info = body.sub(ilen)
        text, text_id = "", None
        if info_id in (STR_ALMON_INFO, GEN_ALMON_INFO) and info.remaining >= 10:
            info.u16()  # al_inst_no
            text_id = info.u32()
            info.u16(), info.u16()  # priority, flags
            if info_id == STR_ALMON_INFO and info.remaining >= 2:
                text = read_string(info.take(info.remaining))
        out.append(AlarmEntry(kind, src, code, atype, state, text, text_id))
    return out


def alarm_entries(attrs: dict[int, bytes]) -> list[AlarmEntry]:
    out = []
    if NOM_ATTR_AL_MON_P_AL_LIST in attrs:
        out += _alarm_list("P", attrs[NOM_ATTR_AL_MON_P_AL_LIST])
    if NOM_ATTR_AL_MON_T_AL_LIST in attrs:
        out += _alarm_list("T", attrs[NOM_ATTR_AL_MON_T_AL_LIST])
    return out


def text_ids(raw: bytes) -> tuple[int, ...]:
    try:
        return read_text_id_list(Reader(raw))
    except PduError:
        return ()
