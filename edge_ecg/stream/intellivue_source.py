"""``IntellivueSource``: a Philips IntelliVue monitor's MIB/RS232 port as a stream of ``SampleBlock``.

``source = "intellivue:/dev/ttyUSB0"`` in the daemon's config. A reader thread owns the port
(pyserial, 115200 8N1, exclusive lock), runs the Data Export client
(``firmware_bridge.intellivue.session.ClientSession``: association, MDS Create, wave priority
list, static attributes, extended polls, keep-alive) and turns wave poll replies into blocks:

- **index**: the monitor's RelativeTime (1/8 ms ticks, unwrapped past 2**32) divided by the ECG
  sample period; 0 is the first sample this source ever received. A reply lost on the line, a
  link loss and re-association with the same monitor all show up as ``gap_before`` of exactly the
  samples that never arrived. A monitor that restarted (its time went backwards) is re-based from
  the wall-clock time nothing arrived, as the cart source does;
- **leads**: the ECG lead waves the monitor exports, canonical names (``I``, ``II`` ...), in the
  order of the requested priority list; samples in microvolts from the wave's own scale and
  range and unit (static attributes); ``lead_off`` where the monitor marks the wave invalid;
- **aux**: pleth as ``AuxChannel("PLETH", 125 Hz)``, its own index on the same time base, in
  the monitor's counts (pleth has no absolute scale);
- **the monitor's own view**: numerics and alarms are logged (``edge_ecg.stream.intellivue_source``
  log lines) and, when the daemon attaches its event log (``attach_event_sink``), written there as
  ``monitor_alarm`` (each alarm the monitor raises or clears, at stream time) and
  ``monitor_numerics`` (every ``numerics_log_s``), beside our own alarms.

States: ``connecting`` (port opening, associating) / ``connected`` (configured, no samples yet) /
``streaming`` / ``stalled`` (associated, no wave data for ``stall_s``) / ``lost`` (port error, or
no frame at all for ``silence_s``: the session aborts and associates again, on the same port if
it stays open, else the port is reopened with 50 ms..0.5 s backoff) / ``closed``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edge_ecg.stream.block import AuxChannel, SampleBlock, SourceState
from edge_ecg.stream.port_source import PortSource
from firmware_bridge.intellivue.framing import FrameDecoder
from firmware_bridge.intellivue.nomenclature import AUX_WAVES, MS_INVALID, MS_UNAVAILABLE
from firmware_bridge.intellivue.observations import decode_samples
from firmware_bridge.intellivue.session import (
    AlarmData,
    Associated,
    ClientConfig,
    ClientSession,
    Disassociated,
    MonitorInfo,
    NumericData,
    Problem,
    SessionState,
    WaveData,
    WavesReady,
)

log = logging.getLogger(__name__)

_WRAP = 1 << 32
RT_PER_S = 8000


@dataclass
class IntellivueStats:
    """Counters for the technical log (read from any thread; they only grow)."""

    connects: int = 0  # port opened
    associations: int = 0
    reassociations: int = 0
    blocks: int = 0
    samples: int = 0
    samples_missing: int = 0  # sum of gap_before handed to the consumer
    queue_overruns: int = 0
    wave_replies: int = 0
    replies_unusable: int = 0  # wave replies whose waves the static attributes did not describe
    bytes_in: int = 0
    monitor_alarm_changes: int = 0
    last_error: str = ""
    scale_source: str = ""
    frames: dict = field(default_factory=dict)  # frame decoder counters, summed over connections (updated when one ends)
    session: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Layout:
    leads: tuple[str, ...]
    lead_ids: tuple[int, ...]
    fs: float
    period: int  # ECG sample period in RelativeTime ticks
    aux: tuple[tuple[str, int, int, str], ...]  # (name, physio id, period ticks, unit)


def parse_port(uri_rest: str) -> tuple[str, dict[str, str]]:
    """``/dev/ttyUSB0?waves=I,II,PLETH&baud=115200`` -> (port, options)."""
    port, _, query = uri_rest.partition("?")
    opts = {}
    for item in filter(None, query.split("&")):
        k, _, v = item.partition("=")
        opts[k] = v
    return port, opts


class IntellivueSource(PortSource):
    """An IntelliVue monitor on ``port`` (a device path or a ``/dev/serial/by-id/...`` link).

    Keyword-only options (seconds): ``baudrate`` (115200: the MIB/RS232 setting), ``waves`` (the
    wave priority list: lead names and "PLETH"), ``stall_s`` (1.5), ``silence_s`` (3.0: no frame
    at all -> lost, re-associate), ``backoff_s``, ``queue_blocks`` (4096; the oldest go first,
    seen as a gap), ``numerics_log_s`` (10), ``on_state(state, detail)``, ``on_monitor(kind,
    record)`` (every monitor numeric/alarm record), ``config`` (a ``ClientConfig``: waves, timers),
    ``exclusive`` and ``start`` as for ``SerialSource``. ``close()`` releases the association
    (best effort) before freeing the port.
    """

    label = "intellivue"
    close_timeout_s = 3.0

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        waves: tuple[str, ...] | None = None,
        stall_s: float = 1.5,
        silence_s: float = 3.0,
        backoff_s: tuple[float, float] = (0.05, 0.5),
        queue_blocks: int = 4096,
        read_timeout_s: float = 0.05,
        numerics_log_s: float = 10.0,
        on_state: Callable[[SourceState, str], None] | None = None,
        on_monitor: Callable[[str, dict], None] | None = None,
        config: ClientConfig | None = None,
        exclusive: bool = True,
        start: bool = True,
    ) -> None:
        super().__init__(port, stats=IntellivueStats(), backoff_s=backoff_s, queue_blocks=queue_blocks, read_timeout_s=read_timeout_s,
                         on_state=on_state, exclusive=exclusive)
        self.baudrate = baudrate
        self.stall_s = stall_s
        self.silence_s = silence_s
        self.numerics_log_s = numerics_log_s
        self.on_monitor = on_monitor
        config = config or ClientConfig()
        if waves:
            config = dataclasses.replace(config, waves=tuple(waves))
        self.session = ClientSession(config)
        self.monitor: MonitorInfo | None = None
        self.layout: _Layout | None = None
        self._event_sink: Callable[..., Any] | None = None
        self._unsent_notes: collections.deque = collections.deque(maxlen=256)
        # time bookkeeping (reader thread only)
        self._rt_last: int | None = None  # last raw RelativeTime seen (for unwrapping)
        self._rt_unwrapped = 0
        self._origin: int | None = None  # unwrapped RelativeTime of stream index 0
        self._rebase_offset = 0  # ticks added after a monitor restart
        self._stream_next: int | None = None
        self._last_rx_wall = 0.0
        self._alarms: dict[tuple, dict] = {}
        self._early: collections.deque = collections.deque(maxlen=64)  # monitor records before the first wave sample
        self._numerics_logged = 0.0
        if start:
            self.start()

    # ------------------------------------------------------------------ public API
    def attach_event_sink(self, note: Callable[..., Any]) -> None:
        """``note(kind, **fields)`` (the daemon's ``EventSinks.note``): monitor alarms and numerics go
        there, starting with those noted before it was attached (the reader starts at once)."""
        with self._lock:
            self._event_sink = note
            held, self._unsent_notes = list(self._unsent_notes), collections.deque(maxlen=256)
        for kind, fields in held:
            self._deliver_note(note, kind, fields)

    # ------------------------------------------------------------------ reader thread
    def _open_port(self):
        import serial  # pyserial

        return serial.Serial(self.port, self.baudrate, bytesize=8, parity="N", stopbits=1, timeout=self.read_timeout_s,
                             write_timeout=1.0, exclusive=self.exclusive)

    def _connection(self, ser) -> bool:
        """One open port: associate (aborting anything stale first) and stream until it fails."""
        self.stats.connects += 1
        decoder = FrameDecoder()
        session = self.session
        now = time.monotonic()
        self._handle_events(session.link_lost(now, "port reopened"), now)
        self._set_state(SourceState.CONNECTING, "associating")
        last_frame = last_wave = now
        try:
            while not self._closed.is_set():
                data = ser.read(max(1, ser.in_waiting))
                now = time.monotonic()
                events: list = []
                if data:
                    self.stats.bytes_in += len(data)
                    frames = decoder.feed(data)
                    if frames:
                        last_frame = now
                    for frame in frames:
                        events += session.receive(frame, now)
                events += session.tick(now)
                if any(isinstance(e, WaveData) for e in events):
                    last_wave = now
                self._handle_events(events, now)
                for wire in session.take_outgoing():
                    ser.write(wire)
                if session.state == SessionState.STREAMING:
                    quiet = now - max(last_frame, session.state_since)
                    if quiet > self.silence_s:
                        self._set_state(SourceState.LOST, f"monitor silent for {quiet:.1f} s; associating again")
                        self._handle_events(session.link_lost(now, "silence"), now)
                        last_frame = last_wave = now
                    elif now - last_wave > self.stall_s and self._state in (SourceState.STREAMING, SourceState.CONNECTED):
                        self._set_state(SourceState.STALLED, f"no wave data for {now - last_wave:.1f} s")
        finally:
            for k, v in decoder.stats.as_dict().items():  # totals over every connection
                self.stats.frames[k] = self.stats.frames.get(k, 0) + v
            self.stats.session = dict(session.stats.__dict__)
        if self._closed.is_set():
            try:
                session.release(time.monotonic())
                for wire in session.take_outgoing():
                    ser.write(wire)
                ser.flush()
            except Exception:
                pass
        return True

    # ------------------------------------------------------------------ session events
    def _handle_events(self, events: list, now: float) -> None:
        for ev in events:
            if isinstance(ev, WaveData):
                self._on_waves(ev, now)
            elif isinstance(ev, (NumericData, AlarmData)):
                if self._origin is None:  # their time needs the stream's origin: hold them until it exists
                    self._early.append(ev)
                else:
                    self._on_monitor_data(ev, now)
            elif isinstance(ev, WavesReady):
                self._on_ready(ev)
            elif isinstance(ev, MonitorInfo):
                self.monitor = ev
                log.info("intellivue %s: monitor %r (%s), monitor clock %s", self.port, ev.bed_label, ev.model, ev.abs_time or "unknown")
                self._note("monitor_connected", bed_label=ev.bed_label, model=ev.model, monitor_time=ev.abs_time)
            elif isinstance(ev, Associated):
                self.stats.associations += 1
                if self.stats.associations > 1:
                    self.stats.reassociations += 1
            elif isinstance(ev, Disassociated):
                log.warning("intellivue %s: %s", self.port, ev.reason)
                self._alarms.clear()
            elif isinstance(ev, Problem):
                self.stats.last_error = ev.text
                log.warning("intellivue %s: %s", self.port, ev.text)

    def _on_ready(self, ev: WavesReady) -> None:
        self.stats.scale_source = ev.scale_source
        order = {name: i for i, name in enumerate(self.session.config.waves)}
        ecg = sorted((s for s in ev.specs if s.lead and s.sample_period_ticks), key=lambda s: order.get(s.lead, 99))
        for s in ev.specs:
            log.info("intellivue %s: wave %s", self.port, s.describe())
        if not ecg:
            self.stats.last_error = "the monitor exports no ECG lead wave"
            self._set_state(SourceState.STALLED, self.stats.last_error)
            return
        period = ecg[0].sample_period_ticks
        ecg = [s for s in ecg if s.sample_period_ticks == period]
        leads = tuple(dict.fromkeys(s.lead for s in ecg))
        aux = tuple((AUX_WAVES[s.physio_id][0], s.physio_id, s.sample_period_ticks, AUX_WAVES[s.physio_id][1])
                    for s in ev.specs if s.physio_id in AUX_WAVES and s.sample_period_ticks)
        layout = _Layout(leads, tuple(next(s.physio_id for s in ecg if s.lead == lead) for lead in leads), RT_PER_S / period, period, aux)
        if self.layout is not None and (layout.leads != self.layout.leads or layout.fs != self.layout.fs):
            log.warning("intellivue %s: wave layout changed from %s to %s", self.port, self.layout.leads, layout.leads)
        self.layout = layout
        self._set_state(SourceState.CONNECTED, f"{', '.join(leads)} at {layout.fs:g} Hz" + (f" + {', '.join(a[0] for a in aux)}" if aux else "")
                        + ("" if ev.scale_source == "monitor" else " (scale: documented default)"))

    def _unwrap(self, rt: int) -> int:
        if self._rt_last is None:
            self._rt_unwrapped = rt
        else:
            delta = (rt - self._rt_last) % _WRAP
            self._rt_unwrapped += delta - _WRAP if delta >= _WRAP // 2 else delta
        self._rt_last = rt
        return self._rt_unwrapped

    def _ticks(self, rt: int, now: float) -> int:
        """RelativeTime of a reply -> ticks since stream origin (re-based if the monitor restarted)."""
        t = self._unwrap(rt) + self._rebase_offset
        if self._origin is None:
            self._origin = t
        ticks = t - self._origin
        if self._stream_next is not None and self.layout is not None:
            expected = self._stream_next * self.layout.period
            if ticks < expected - 60 * RT_PER_S:  # time went backwards a long way: the monitor restarted
                missed = max(0, int(round((now - self._last_rx_wall) * RT_PER_S)) - 2048)
                self._rebase_offset += expected + missed - ticks
                log.warning("intellivue %s: monitor time went back; re-based the stream index", self.port)
                ticks = expected + missed
        return ticks

    def _on_waves(self, ev: WaveData, now: float) -> None:
        self.stats.wave_replies += 1
        if self.layout is None and self.session.scale_source == "default":
            # the monitor never described its waves: take them from the data, with the documented defaults
            specs = [self.session.spec_for(obs) for obs in ev.observations]
            self._on_ready(WavesReady(tuple(s for s in specs if s is not None), (), "default"))
        layout = self.layout
        if layout is None:
            return
        by_id: dict[int, Any] = {}
        for obs in ev.observations:
            by_id.setdefault(obs.physio_id, obs)
        ecg = [by_id.get(pid) for pid in layout.lead_ids]
        if not any(o is not None for o in ecg):
            return
        n = max(len(o.samples) for o in ecg if o is not None)
        ticks = self._ticks(ev.rel_time, now)
        start = int(round(ticks / layout.period))
        samples = np.full((n, len(layout.leads)), np.nan, dtype=np.float32)
        lead_off = np.zeros((n, len(layout.leads)), dtype=bool)
        pacer = np.zeros(n, dtype=bool)
        for j, obs in enumerate(ecg):
            spec = self.session.spec_for(obs) if obs is not None else None
            if obs is None or spec is None:
                lead_off[:, j] = True
                if obs is not None:
                    self.stats.replies_unusable += 1
                continue
            values, invalid, pace = decode_samples(spec, obs.samples[:n])
            samples[: values.size, j] = values
            pacer[: pace.size] |= pace
            if obs.state & (MS_INVALID | MS_UNAVAILABLE):
                lead_off[:, j] = True
        aux = []
        for name, pid, period, unit in layout.aux:
            obs = by_id.get(pid)
            spec = self.session.spec_for(obs) if obs is not None else None
            if obs is None or spec is None:
                continue
            values, _invalid, _pace = decode_samples(spec, obs.samples)
            if obs.state & (MS_INVALID | MS_UNAVAILABLE):
                values = np.full(values.shape, np.nan, dtype=np.float32)
            aux.append(AuxChannel(name, RT_PER_S / period, int(round(ticks / period)), values, unit))
        block = SampleBlock(start=start, samples=samples, fs=layout.fs, leads=layout.leads,
                            lead_off=lead_off if lead_off.any() else None,
                            pacer=np.flatnonzero(pacer).astype(np.int64), aux=tuple(aux))
        if self._stream_next is not None and block.stop <= self._stream_next:
            return  # already have it
        self._stream_next = block.stop
        self._last_rx_wall = now
        while self._early:
            self._on_monitor_data(self._early.popleft(), now)
        self.stats.blocks += 1
        self.stats.samples += block.n
        self._set_state(SourceState.STREAMING)
        self._put(block)

    def _stream_t(self, rel_time: int) -> float | None:
        """Stream time (s) of a monitor RelativeTime, on the same base as the sample index."""
        if self._origin is None:
            return None
        delta = (rel_time - (self._rt_last if self._rt_last is not None else rel_time)) % _WRAP
        delta = delta - _WRAP if delta >= _WRAP // 2 else delta
        return round((self._rt_unwrapped + delta + self._rebase_offset - self._origin) / RT_PER_S, 3)

    def _on_monitor_data(self, ev, now: float) -> None:
        if isinstance(ev, NumericData):
            self._on_numerics(ev, now)
        else:
            self._on_alarms(ev)

    def _on_numerics(self, ev: NumericData, now: float) -> None:
        values = {f"{v.name}": (round(v.value, 3) if v.valid else None) for v in ev.values}
        record = {"t": self._stream_t(ev.rel_time), "values": values,
                  "units": {v.name: v.unit for v in ev.values}}
        self._callback("numerics", record)
        if now - self._numerics_logged >= self.numerics_log_s:
            self._numerics_logged = now
            shown = ", ".join(f"{k.replace('NOM_', '')}={v}" for k, v in values.items() if v is not None)
            log.info("intellivue %s: monitor numerics t=%s %s", self.port, record["t"], shown)
            self._note("monitor_numerics", t=record["t"], values={k: v for k, v in values.items() if v is not None})

    def _on_alarms(self, ev: AlarmData) -> None:
        t = self._stream_t(ev.rel_time)
        current = {e.key: e for e in ev.entries if e.alert_type != 0}
        for key, entry in current.items():
            if key not in self._alarms:
                rec = {"change": "raised", "t": t, **entry.to_dict()}
                self._alarms[key] = rec
                self._alarm_change(rec)
        for key in [k for k in self._alarms if k not in current]:
            rec = {**self._alarms.pop(key), "change": "cleared", "t": t}
            self._alarm_change(rec)

    def _alarm_change(self, rec: dict) -> None:
        self.stats.monitor_alarm_changes += 1
        level = logging.WARNING if rec["type"].endswith("_P_AL") and rec["change"] == "raised" else logging.INFO
        log.log(level, "intellivue %s: monitor alarm %s t=%s %s %s %s %r", self.port, rec["change"], rec["t"], rec["type"], rec["source"], rec["code"], rec["text"])
        self._callback("alarm", rec)
        self._note("monitor_alarm", **rec)

    def _callback(self, kind: str, record: dict) -> None:
        if self.on_monitor is not None:
            try:
                self.on_monitor(kind, record)
            except Exception:
                log.exception("intellivue %s: on_monitor callback failed", self.port)

    def _note(self, kind: str, **fields: Any) -> None:
        with self._lock:
            sink = self._event_sink
            if sink is None:  # no event log yet: hold the record (bounded) until one is attached
                self._unsent_notes.append((kind, fields))
                return
        self._deliver_note(sink, kind, fields)

    def _deliver_note(self, sink: Callable[..., Any], kind: str, fields: dict) -> None:
        try:
            sink(kind, **fields)
        except Exception as exc:  # the event log failing must not stop the samples
            log.warning("intellivue %s: event log note failed: %s", self.port, exc)


_OPTIONS = {"waves", "baud"}


def check_uri(rest: str, where: str) -> tuple[str, dict]:
    """The port and options of ``intellivue:PORT[?waves=I,II,PLETH&baud=115200]``; ``ConfigError`` names what is wrong."""
    from edge_ecg.errors import ConfigError
    from firmware_bridge.intellivue.session import label_for

    port, opts = parse_port(rest)
    if not port:
        raise ConfigError(where, f"intellivue:{rest!r} names no serial port (e.g. intellivue:/dev/ttyUSB0)")
    unknown = set(opts) - _OPTIONS
    if unknown:
        raise ConfigError(where, f"unknown option(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_OPTIONS))})")
    kw: dict[str, Any] = {}
    if "waves" in opts:
        waves = tuple(w.strip() for w in opts["waves"].split(",") if w.strip())
        bad = [w for w in waves if label_for(w) is None]
        if not waves or bad:
            raise ConfigError(where, f"waves={opts['waves']!r}: unknown wave(s) {', '.join(bad) or '(none given)'} "
                                     "(allowed: I, II, III, aVR, aVL, aVF, V1..V6, V, MCL, PLETH, ABP)")
        kw["waves"] = waves
    if "baud" in opts:
        try:
            kw["baudrate"] = int(opts["baud"])
        except ValueError:
            raise ConfigError(where, f"baud={opts['baud']!r} is not a number (the MIB/RS232 port runs at 115200)") from None
    return port, kw


def open_intellivue(rest: str, where: str = "source") -> IntellivueSource:
    port, kw = check_uri(rest, where)
    return IntellivueSource(port, **kw)
