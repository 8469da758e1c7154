"""HL7 v3 annotated ECG (aECG) XML, the FDA's format for ECG exchange that carts export.

Written against the HL7 aECG schema (``PORT_MT020001``, namespace ``urn:hl7-org:v3``) and its
Implementation Guide (21 March 2005). The waveform lives in::

    AnnotatedECG / component / series (code RHYTHM) / component / sequenceSet /
        component / sequence (code TIME_ABSOLUTE, value GLIST_TS: head + increment)
        component / sequence (code MDC_ECG_LEAD_II, value SLIST_PQ: origin, scale, digits)

A sample is ``origin + scale * digit`` in the units of origin/scale (uV, mV, V). stdlib
``xml.etree`` reads and writes it: the format is plain XML and needs no dependency. Files with a
DTD (``<!DOCTYPE``/``<!ENTITY``) are refused so that entity expansion cannot blow up memory.

aECG has no gap marker in SLIST_PQ digits, so ``write_aecg`` refuses a record with NaN samples.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError
from edge_ecg.records.checks import check_file, check_record, lead_meta, unit_factor
from edge_ecg.records.leads import canonical_lead, canonical_leads
from edge_ecg.records.record import Record

NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTCODE = "2.16.840.1.113883.5.4"  # HL7 ActCode: RHYTHM, TIME_ABSOLUTE
MDC = "2.16.840.1.113883.6.24"  # ISO/IEEE 11073 MDC: lead codes
CPT4 = "2.16.840.1.113883.6.12"
_Q = "{%s}" % NS
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0}
SCALE_UV = 0.5  # written resolution: 0.5 uV per digit (carts commonly use 2.5 or 5 uV)


def mdc_lead_code(lead: str) -> str:
    """``aVR`` -> ``MDC_ECG_LEAD_AVR``; monitor names (``ECG1``) pass through upper-cased."""
    return "MDC_ECG_LEAD_" + re.sub(r"[^A-Za-z0-9]", "_", lead).upper()


def lead_from_code(code: str) -> str:
    return canonical_lead(code[len("MDC_ECG_LEAD_") :] if code.upper().startswith("MDC_ECG_LEAD_") else code)


def _ts(value: str, path: Path) -> dt.datetime:
    """HL7 TS (YYYYMMDDHHMMSS[.fff][+ZZZZ]) to a naive datetime (time zone dropped, as the record keeps local time)."""
    m = re.match(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d+)?", value.strip())
    if not m:
        raise RecordError(path, f"bad HL7 timestamp {value!r}")
    parts = [int(g) if g else d for g, d in zip(m.groups()[:6], (0, 1, 1, 0, 0, 0))]
    micro = int(round(float(m.group(7)) * 1e6)) if m.group(7) else 0
    return dt.datetime(*parts, microsecond=min(micro, 999999))


def _fmt_ts(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S") + f".{t.microsecond // 1000:03d}"


def read_aecg(path: str | Path) -> Record:
    path = Path(path)
    check_file(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise RecordError(path, "aECG file declares a DTD/entities; refused (entity expansion)")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise RecordError(path, f"not well-formed XML (truncated?): {exc}") from exc
    if root.tag != _Q + "AnnotatedECG":
        raise RecordError(path, f"root element is {root.tag!r}, not HL7 aECG AnnotatedECG in {NS}")
    series = root.findall(f"{_Q}component/{_Q}series")
    if not series:
        raise RecordError(path, "no component/series (no waveform)")
    chosen = next((s for s in series if (s.find(f"{_Q}code") is not None and s.find(f"{_Q}code").get("code") == "RHYTHM")), series[0])
    seqset = chosen.find(f"{_Q}component/{_Q}sequenceSet")
    if seqset is None:
        raise RecordError(path, "series has no sequenceSet")
    fs = None
    start = None
    leads, columns, original = [], [], []
    for seq in seqset.findall(f"{_Q}component/{_Q}sequence"):
        code_el, value = seq.find(f"{_Q}code"), seq.find(f"{_Q}value")
        if code_el is None or value is None:
            continue
        code = code_el.get("code", "")
        vtype = value.get(f"{{{XSI}}}type", "")
        if code.startswith("TIME_"):
            inc = value.find(f"{_Q}increment")
            if inc is None:
                raise RecordError(path, f"time sequence {code} has no increment (only regular sampling is supported)")
            try:
                step = float(inc.get("value", "nan")) * _TIME_UNITS[inc.get("unit", "s")]
            except (KeyError, ValueError):
                raise RecordError(path, f"time increment {inc.attrib} is not a number in s or ms") from None
            if not np.isfinite(step) or step <= 0:
                raise RecordError(path, f"sampling rate must be positive: time increment is {inc.get('value')!r}")
            fs = 1.0 / step
            head_el = value.find(f"{_Q}head")
            if code == "TIME_ABSOLUTE" and head_el is not None and head_el.get("value"):
                start = _ts(head_el.get("value"), path)
            continue
        if vtype and vtype != "SLIST_PQ":
            continue
        origin, scale, digits = value.find(f"{_Q}origin"), value.find(f"{_Q}scale"), value.find(f"{_Q}digits")
        if scale is None or digits is None:
            raise RecordError(path, f"sequence {code}: SLIST_PQ without scale/digits")
        factor = unit_factor(scale.get("unit", "uV"))
        if factor is None:
            raise RecordError(path, f"sequence {code}: unit {scale.get('unit')!r} is not a voltage")
        o_factor = unit_factor(origin.get("unit", scale.get("unit", "uV"))) if origin is not None else factor
        try:
            d = np.array((digits.text or "").split(), dtype=np.float64)
            o = float(origin.get("value", "0")) if origin is not None else 0.0
            s = float(scale.get("value"))
        except (TypeError, ValueError) as exc:
            raise RecordError(path, f"sequence {code}: digits/origin/scale are not numbers ({exc})") from None
        leads.append(code[len("MDC_ECG_LEAD_"):] if code.upper().startswith("MDC_ECG_LEAD_") else code)
        original.append(code)
        columns.append(o * (o_factor or factor) + s * factor * d)
    if fs is None:
        raise RecordError(path, "no TIME_ABSOLUTE/TIME_RELATIVE sequence: sampling rate unknown")
    if not columns:
        raise RecordError(path, "no lead sequences (SLIST_PQ) in the sequenceSet")
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        short = min(zip(map(len, columns), leads))
        raise RecordError(path, f"leads differ in length ({min(lengths)}..{max(lengths)} samples; {short[1]} is short): truncated")
    signals = np.stack(columns, axis=1).astype(np.float32)
    names, renamed = canonical_leads(leads, path)
    meta = lead_meta({"format": "hl7-aecg", "original_leads": original}, renamed)
    record = Record(signals=signals, fs=float(fs), leads=names, name=path.stem, source=str(path), start_time=start, meta=meta)
    return check_record(record, path)


def _el(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, _Q + tag, {k.rstrip("_"): v for k, v in attrib.items()})


def _interval(eff: ET.Element, start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start is None or end is None:
        _el(eff, "low", nullFlavor="UNK")
        _el(eff, "high", nullFlavor="UNK")
    else:
        _el(eff, "low", value=_fmt_ts(start))
        _el(eff, "high", value=_fmt_ts(end))


def write_aecg(record: Record, path: str | Path) -> Path:
    """Write ``record`` as an HL7 aECG rhythm series: digits at 0.5 uV per step, origin 0."""
    path = Path(path)
    if np.isnan(record.signals).any():
        bad = [lead for lead, gap in zip(record.leads, np.isnan(record.signals).any(axis=0)) if gap]
        raise RecordError(path, f"aECG cannot hold gaps, and leads {', '.join(bad)} have NaN samples")
    ET.register_namespace("", NS)
    ET.register_namespace("xsi", XSI)
    start = record.start_time if isinstance(record.start_time, dt.datetime) else None
    end = start + dt.timedelta(seconds=record.duration_s) if start else None
    root = ET.Element(_Q + "AnnotatedECG", {"type": "Observation", f"{{{XSI}}}schemaLocation": f"{NS} PORT_MT020001.xsd"})
    _el(root, "id", root=str(uuid.uuid5(uuid.NAMESPACE_URL, f"edge-ecg:{record.source}:{record.name}")))
    _el(root, "code", code="93000", codeSystem=CPT4, codeSystemName="CPT-4")
    _interval(_el(root, "effectiveTime"), start, end)
    # componentOf (timepointEvent / subjectAssignment / subject / trialSubject) is required by the schema
    tp = _el(_el(root, "componentOf"), "timepointEvent")
    _el(tp, "code", code="UNSCHEDULED", codeSystem="")
    sa = _el(_el(tp, "componentOf"), "subjectAssignment")
    from edge_ecg.records.identity import identifiers

    ids = identifiers(record)  # the subject's id when the record still carries one, else the record name
    _el(_el(_el(sa, "subject"), "trialSubject"), "id", root="2.25.0", extension=ids.get("id") or record.name or "unknown")
    _el(_el(_el(sa, "componentOf"), "clinicalTrial"), "id", root="2.25.0", extension="edge-ecg")
    series = _el(_el(root, "component"), "series")
    _el(series, "code", code="RHYTHM", codeSystem=ACTCODE)
    _interval(_el(series, "effectiveTime"), start, end)
    seqset = _el(_el(series, "component"), "sequenceSet")
    seq = _el(_el(seqset, "component"), "sequence")
    if start is not None:
        _el(seq, "code", code="TIME_ABSOLUTE", codeSystem=ACTCODE)
        val = _el(seq, "value", **{f"{{{XSI}}}type": "GLIST_TS"})
        _el(val, "head", value=_fmt_ts(start), unit="s")
    else:  # start unknown: relative time (GLIST_PQ from 0 s) rather than an invented date
        _el(seq, "code", code="TIME_RELATIVE", codeSystem=ACTCODE)
        val = _el(seq, "value", **{f"{{{XSI}}}type": "GLIST_PQ"})
        _el(val, "head", value="0", unit="s")
    _el(val, "increment", value=repr(1.0 / record.fs), unit="s")
    for j, lead in enumerate(record.leads):
        seq = _el(_el(seqset, "component"), "sequence")
        _el(seq, "code", code=mdc_lead_code(lead), codeSystem=MDC, codeSystemName="MDC")
        val = _el(seq, "value", **{f"{{{XSI}}}type": "SLIST_PQ"})
        _el(val, "origin", value="0", unit="uV")
        _el(val, "scale", value=repr(SCALE_UV), unit="uV")
        digits = np.round(record.signals[:, j].astype(np.float64) / SCALE_UV).astype(np.int64)
        _el(val, "digits").text = " ".join(map(str, digits.tolist()))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path


def looks_like_aecg(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b"AnnotatedECG" in f.read(2048)
    except OSError:
        return False
