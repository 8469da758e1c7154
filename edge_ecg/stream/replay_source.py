"""A record replayed as a live stream: ``replay:RECORD?speed=X&start=S&stop=S&loop=N``.

For demos, tests and the soak benchmark: the same ``SampleBlock`` values a serial cart gives,
paced against the wall clock at ``speed`` times real time (``speed=0`` = as fast as the consumer
takes them). ``loop`` replays the excerpt N times with a continuing sample index, so an hour of
input can be made from a shorter real record without holding an hour in memory.

A record's pulse waves (``meta["other_signals"]``: PLETH, ABP, as the WFDB reader puts them for
CinC 2015 and MIMIC-style records) travel beside the leads as ``SampleBlock.aux``, each at its own
rate (``meta["other_signals_fs"]`` when given, else inferred from its length over the record's
duration) and aligned in stream time, so replays, the daemon and the evaluations see the pulse.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edge_ecg.errors import ConfigError, RecordError
from edge_ecg.records import Record, read_record
from edge_ecg.stream.block import AuxChannel, SampleBlock, SourceState

# channel names of pulsatile waves and the canonical name the DSP knows them by
PULSE_NAMES = {"PLETH": "PLETH", "PPG": "PLETH", "SPO2": "PLETH", "ABP": "ABP", "ART": "ABP", "AOBP": "ABP"}
_PULSE_UNITS = {"PLETH": "NU", "ABP": "mmHg"}


@dataclass(frozen=True)
class _Aux:
    name: str
    fs: float
    samples: np.ndarray  # the replayed span, float32


def pulse_channels(record: Record, a: int, b: int) -> list[_Aux]:
    """The record's pulse waves over ECG samples [a, b), at their own rates (see the module doc)."""
    other = record.meta.get("other_signals") or {}
    rates = record.meta.get("other_signals_fs") or {}
    out: list[_Aux] = []
    seen: set[str] = set()
    for raw_name, values in other.items():
        name = PULSE_NAMES.get(str(raw_name).strip().upper())
        if name is None or name in seen:
            continue
        x = np.asarray(values, dtype=np.float32).reshape(-1)
        if x.size == 0:
            continue
        fs = float(rates.get(raw_name, 0.0)) or round(x.size * record.fs / max(record.n_samples, 1), 6)
        if not np.isfinite(fs) or fs <= 0:
            continue
        ia, ib = int(round(a * fs / record.fs)), int(round(b * fs / record.fs))
        out.append(_Aux(name, fs, x[ia:ib]))
        seen.add(name)
    return out


@dataclass(frozen=True)
class ReplaySpec:
    path: str
    speed: float = 1.0
    start_s: float = 0.0
    stop_s: float | None = None
    loop: int = 1
    block_s: float = 0.1

    @classmethod
    def parse(cls, uri: str, where: str = "source") -> "ReplaySpec":
        """``replay:PATH[?speed=X&start=S&stop=S&loop=N&block=S]``; errors name the bad part."""
        if not uri.startswith("replay:"):
            raise ConfigError(where, f"{uri!r} is not a replay source (replay:RECORD[?speed=X])")
        body = uri[len("replay:") :]
        path, _, query = body.partition("?")
        if not path:
            raise ConfigError(where, f"{uri!r} names no record after 'replay:'")
        known = {"speed", "start", "stop", "loop", "block"}
        kw: dict = {}
        for key, values in urllib.parse.parse_qs(query, keep_blank_values=True).items():
            if key not in known:
                raise ConfigError(where, f"unknown replay option {key!r} (allowed: {', '.join(sorted(known))})")
            try:
                value = float(values[-1])
            except ValueError:
                raise ConfigError(where, f"replay option {key}={values[-1]!r} is not a number") from None
            if key in ("speed", "start") and value < 0 or key in ("loop", "block") and value <= 0:
                raise ConfigError(where, f"replay option {key}={values[-1]} out of range")
            kw[{"start": "start_s", "stop": "stop_s", "block": "block_s"}.get(key, key)] = int(value) if key == "loop" else value
        return cls(path=path, **kw)


class ReplaySource:
    """Iterable of ``SampleBlock``s from a record at ``speed`` x real time; ``close()`` stops it."""

    def __init__(self, record: Record | str | Path, speed: float = 1.0, start_s: float = 0.0, stop_s: float | None = None, loop: int = 1, block_s: float = 0.1) -> None:
        self.record = record if isinstance(record, Record) else read_record(record)
        fs = self.record.fs
        a = int(round(start_s * fs))
        b = self.record.n_samples if stop_s is None else min(self.record.n_samples, int(round(stop_s * fs)))
        if not 0 <= a < b:
            raise RecordError(self.record.source or self.record.name, f"replay span {start_s}..{stop_s} s is empty (record is {self.record.duration_s:.1f} s)")
        self._signals = self.record.signals[a:b]
        self._aux = pulse_channels(self.record, a, b)
        self.fs = fs
        self.leads = self.record.leads
        self.speed = float(speed)
        self.loop = int(loop)
        self.block = max(1, int(round(block_s * fs)))
        self.state = SourceState.CONNECTED
        self._closed = threading.Event()

    @classmethod
    def from_uri(cls, uri: str, where: str = "source") -> "ReplaySource":
        spec = ReplaySpec.parse(uri, where)
        return cls(spec.path, speed=spec.speed, start_s=spec.start_s, stop_s=spec.stop_s, loop=spec.loop, block_s=spec.block_s)

    @property
    def duration_s(self) -> float:
        return self._signals.shape[0] * self.loop / self.fs

    def __iter__(self) -> Iterator[SampleBlock]:
        n = self._signals.shape[0]
        t0 = time.monotonic()
        index = 0
        self.state = SourceState.STREAMING
        for _ in range(self.loop):
            for a in range(0, n, self.block):
                if self._closed.is_set():
                    self.state = SourceState.CLOSED
                    return
                chunk = self._signals[a : a + self.block]
                if self.speed > 0:
                    due = t0 + (index + chunk.shape[0]) / self.fs / self.speed
                    delay = due - time.monotonic()
                    if delay > 0 and self._closed.wait(delay):
                        self.state = SourceState.CLOSED
                        return
                off = np.isnan(chunk)
                yield SampleBlock(start=index, samples=chunk, fs=self.fs, leads=self.leads, lead_off=off if off.any() else None,
                                  aux=self._aux_blocks(index, a, chunk.shape[0]))
                index += chunk.shape[0]
        self.state = SourceState.CLOSED

    def _aux_blocks(self, index: int, a: int, k: int) -> tuple[AuxChannel, ...]:
        """Each pulse channel's samples over the same stream time as ECG rows [a, a + k) of the
        excerpt (stream index ``index``): bounds are rounded on the channel's own clock from the
        stream index, so consecutive blocks tile it without overlap or loss, also across loops."""
        out = []
        for ch in self._aux:
            r = ch.fs / self.fs
            s0, s1 = int(round(index * r)), int(round((index + k) * r))
            ia = int(round(a * r))
            seg = ch.samples[ia : ia + (s1 - s0)]
            if seg.shape[0] < s1 - s0:  # a wave shorter than the leads: the missing tail is a gap
                seg = np.concatenate([seg, np.full(s1 - s0 - seg.shape[0], np.nan, np.float32)])
            out.append(AuxChannel(name=ch.name, fs=ch.fs, start=s0, samples=seg, unit=_PULSE_UNITS.get(ch.name, "NU")))
        return tuple(out)

    def close(self) -> None:
        self._closed.set()
        self.state = SourceState.CLOSED
