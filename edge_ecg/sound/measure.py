"""Measure an alarm sound back from its samples: pulses, timing, frequencies, levels.

Used by the tests (a rendered WAV, and the bytes ``aplay`` actually wrote to an ALSA file sink)
and by ``edge-ecg sound check``, so a device team can check a recording of the unit's speaker.
The envelope is a moving RMS over two periods of the fundamental (whole periods, so a steady
harmonic tone gives a flat envelope; 3-8 ms, short against the 24-30 ms ramps); pulses are where
it exceeds half of its peak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class PulseMeasure:
    start_s: float  # 50 % point of the rise
    stop_s: float  # 50 % point of the fall
    rise_s: float  # 10 % -> 90 %
    fall_s: float  # 90 % -> 10 %
    f0_hz: float
    harmonics_db: tuple[float, ...]  # levels of harmonics 2, 3, ... in 300-4000 Hz, dB re the fundamental
    level_dbfs: float  # RMS over the pulse's effective duration

    @property
    def td_s(self) -> float:
        return self.stop_s - self.start_s


@dataclass(frozen=True)
class SoundMeasure:
    rate: int
    pulses: tuple[PulseMeasure, ...]
    gaps_s: tuple[float, ...] = field(default=())  # 50 % fall -> next 50 % rise, between consecutive pulses

    def to_dict(self) -> dict:
        d = asdict(self)
        for p, q in zip(d["pulses"], self.pulses):
            p["td_s"] = q.td_s
        return d


def envelope(x: np.ndarray, rate: int, window_s: float | None = None) -> np.ndarray:
    """Moving RMS; the default window is two periods of the whole signal's fundamental."""
    if window_s is None:
        f0, _ = _spectrum(x, rate) if x.size else (500.0, ())
        window_s = 2.0 / f0
    n = max(1, int(round(window_s * rate)))
    power = np.convolve(x.astype(np.float64) ** 2, np.ones(n) / n, mode="same")
    return np.sqrt(np.maximum(power, 0.0))


def _crossing(env: np.ndarray, i: int, level: float, step: int) -> float:
    """Fractional index where ``env`` crosses ``level`` walking from ``i`` by ``step`` (linear interpolation)."""
    j = i
    while 0 <= j + step < env.size and (env[j + step] >= level) == (env[i] >= level):
        j += step
    k = j + step
    if not 0 <= k < env.size:
        return float(j)
    a, b = env[j], env[k]
    frac = 0.0 if a == b else (level - a) / (b - a)
    return j + frac * step


def _spectrum(x: np.ndarray, rate: int) -> tuple[float, tuple[float, ...]]:
    """Fundamental (strongest peak in 150-1000 Hz) and harmonic levels in 300-4000 Hz, dB re it."""
    n = int(2 ** np.ceil(np.log2(max(x.size, 2) * (8 if x.size < 65536 else 1))))  # zero-pad short pulses for resolution
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size), n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    band = (freqs >= 150) & (freqs <= 1000)
    k = int(np.flatnonzero(band)[np.argmax(mag[band])])
    if 0 < k < mag.size - 1:  # parabolic interpolation of the peak
        a, b, c = np.log(mag[k - 1] + 1e-12), np.log(mag[k] + 1e-12), np.log(mag[k + 1] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else k
    f0 = float(k * rate / n)
    ref = float(np.max(mag[(freqs > f0 * 0.97) & (freqs < f0 * 1.03)]))
    levels = []
    h = 2
    while h * f0 <= 4000:
        if h * f0 >= 300:
            sel = (freqs > h * f0 * 0.97) & (freqs < h * f0 * 1.03)
            levels.append(round(20 * np.log10(float(np.max(mag[sel])) / ref + 1e-12), 2))
        h += 1
    return round(f0, 2), tuple(levels)


def measure(x: np.ndarray, rate: int) -> SoundMeasure:
    """Every pulse in ``x`` (float samples) with its timing, spectrum and level."""
    env = envelope(x, rate)
    peak = float(env.max()) if env.size else 0.0
    if peak <= 0:
        return SoundMeasure(rate, ())
    above = env >= 0.5 * peak
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    starts = [e + 1 for e in edges if not above[e]]
    stops = [e for e in edges if above[e]]
    if above[0]:
        starts.insert(0, 0)
    if above[-1]:
        stops.append(env.size - 1)
    pulses = []
    for a, b in zip(starts, stops):
        local = float(env[a : b + 1].max())
        start = _crossing(env, a, 0.5 * local, -1)
        stop = _crossing(env, b, 0.5 * local, +1)
        r10, r90 = _crossing(env, a, 0.1 * local, -1), _crossing(env, a, 0.9 * local, +1)
        f90, f10 = _crossing(env, b, 0.9 * local, -1), _crossing(env, b, 0.1 * local, +1)
        seg = x[int(start) : int(stop) + 1]
        f0, harmonics = _spectrum(seg, rate)
        level = 20 * np.log10(float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) + 1e-12)
        pulses.append(PulseMeasure(float(start / rate), float(stop / rate), float((r90 - r10) / rate), float((f10 - f90) / rate),
                                   float(f0), tuple(float(h) for h in harmonics), round(float(level), 2)))
    gaps = tuple(float(pulses[i + 1].start_s - pulses[i].stop_s) for i in range(len(pulses) - 1))
    return SoundMeasure(rate, tuple(pulses), gaps)


def bursts(m: SoundMeasure, split_s: float = 1.5) -> list[list[PulseMeasure]]:
    """Group pulses into bursts: a gap longer than ``split_s`` starts a new burst."""
    out: list[list[PulseMeasure]] = []
    for i, p in enumerate(m.pulses):
        if i == 0 or m.gaps_s[i - 1] > split_s:
            out.append([])
        out[-1].append(p)
    return out
