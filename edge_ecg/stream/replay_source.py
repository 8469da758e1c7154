"""A record replayed as a live stream: ``replay:RECORD?speed=X&start=S&stop=S&loop=N``.

For demos, tests and the soak benchmark: the same ``SampleBlock`` values a serial cart gives,
paced against the wall clock at ``speed`` times real time (``speed=0`` = as fast as the consumer
takes them). ``loop`` replays the excerpt N times with a continuing sample index, so an hour of
input can be made from a shorter real record without holding an hour in memory.
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
from edge_ecg.stream.block import SampleBlock, SourceState


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
                yield SampleBlock(start=index, samples=chunk, fs=self.fs, leads=self.leads, lead_off=off if off.any() else None)
                index += chunk.shape[0]
        self.state = SourceState.CLOSED

    def close(self) -> None:
        self._closed.set()
        self.state = SourceState.CLOSED
