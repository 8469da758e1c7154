"""Decoder throughput for the bench: 12 leads at 500 Hz, as a multiple of real time.

Side by side in one run: ``Decoder`` fed in serial-sized chunks (64 KiB, 4 KiB, 512 B, one frame
at a time) and a plain byte-loop decoder (what the ``cobs`` package's pure-Python fallback and
``int.from_bytes`` per sample would do), so the ratio shows what the numpy paths buy.
"""

from __future__ import annotations

import statistics
import time
import zlib
from dataclasses import dataclass

import numpy as np

from firmware_bridge.codec import Decoder, encode
from firmware_bridge.frames import Samples

FS = 500.0
LEADS = 12


def synthetic_stream(seconds: float, *, fs: float = FS, leads: int = LEADS, rows_per_frame: int = 10,
                     uv_per_lsb: float = 0.5, seed: int = 0) -> tuple[bytes, int]:
    """Wire bytes of ``seconds`` of ECG-like signal (a 72 bpm spike train plus noise, +-2 mV)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    beat = np.exp(-(((t * 1.2) % 1.0) - 0.3) ** 2 / 0.0004) * 1500.0  # R waves, uV
    sig = beat[:, None] * rng.uniform(-1, 1, leads)[None, :] + rng.normal(0, 20, (n, leads))
    counts = np.round(sig / uv_per_lsb).astype(np.int32)
    status = np.zeros(rows_per_frame, dtype=np.uint16)
    wire = b"".join(
        encode(Samples(i, counts[i : i + rows_per_frame], status[: min(rows_per_frame, n - i)]))
        for i in range(0, n, rows_per_frame)
    )
    return wire, n * leads


def naive_decode(wire: bytes) -> int:
    """A byte-loop reference decoder (COBS per byte, CRC, samples by int.from_bytes); returns samples."""
    total = 0
    for block in wire.split(b"\0"):
        if not block:
            continue
        out = bytearray()
        i = 0
        while i < len(block):
            code = block[i]
            out += block[i + 1 : i + code]
            i += code
            if code < 0xFF and i < len(block):
                out.append(0)
        payload = bytes(out[:-4])
        if zlib.crc32(payload) != int.from_bytes(out[-4:], "little") or payload[0] != 0x02:
            continue
        leads, rows = payload[1], int.from_bytes(payload[2:4], "little")
        width = 2 + 3 * leads
        for r in range(rows):
            base = 8 + r * width + 2
            for j in range(leads):
                int.from_bytes(payload[base + 3 * j : base + 3 * j + 3], "little", signed=True)
                total += 1
    return total


@dataclass
class BenchResult:
    name: str
    cpu_s: float  # median CPU time of this process (what one core spends; robust to a busy machine)
    wall_s: float  # median wall time
    samples: int

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.cpu_s

    @property
    def x_real_time(self) -> float:
        return self.samples_per_s / (FS * LEADS)

    @property
    def x_real_time_wall(self) -> float:
        return self.samples / self.wall_s / (FS * LEADS)


def _time(fn, repeats: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return statistics.median(cpu), statistics.median(wall)


def measure_decode(seconds: float = 120.0, repeats: int = 5) -> list[BenchResult]:
    """Median decode times of the same stream, several ways, in one process on one core."""
    wire, samples = synthetic_stream(seconds)
    frames = [f + b"\0" for f in wire.split(b"\0") if f]
    results = []

    def chunked(size: int):
        def run():
            dec = Decoder()
            for i in range(0, len(wire), size):
                dec.feed(wire[i : i + size])
            assert dec.stats.frames == len(frames) and dec.stats.bad_frames == 0
        return run

    def per_frame():
        dec = Decoder()
        for f in frames:
            dec.feed(f)

    for name, fn in [("Decoder, 64 KiB reads", chunked(65536)), ("Decoder, 4 KiB reads", chunked(4096)),
                     ("Decoder, 512 B reads", chunked(512)), ("Decoder, one frame per read", per_frame)]:
        results.append(BenchResult(name, *_time(fn, repeats), samples))
    short = wire[: len(wire) // 10]  # the byte loop is slow: time a tenth of the stream
    n_short = naive_decode(short)
    results.append(BenchResult("byte-loop reference decoder", *_time(lambda: naive_decode(short), max(1, repeats // 2)), n_short))
    return results


def print_decode_bench(seconds: float = 120.0, repeats: int = 5) -> list[BenchResult]:
    results = measure_decode(seconds, repeats)
    base = results[-1].samples_per_s
    print(f"wire decoder, {LEADS} leads at {FS:g} Hz, 10 rows per frame, {seconds:g} s of signal, median of {repeats}")
    print("(samples/s per CPU-second of this process; wall-clock x real time alongside, lower on a busy machine)")
    print(f"{'decoder':34s} {'samples/s':>12s} {'x real time':>12s} {'wall x rt':>10s} {'vs byte loop':>13s}")
    for r in results:
        print(f"{r.name:34s} {r.samples_per_s:12.3e} {r.x_real_time:12.1f} {r.x_real_time_wall:10.1f} {r.samples_per_s / base:12.1f}x")
    return results
