"""IEC 60601-1-8 auditory alarm signals, synthesised in numpy.

Why synthesised and not recorded: the standard fixes every number of the signal (Tables 3 and 4
of IEC 60601-1-8:2006+A1:2012), so the burst is a few lines of arithmetic whose parameters a
test can measure back from the rendered samples (``edge_ecg.sound.measure``).

What the standard asks, and what is chosen here (``BurstSpec`` below holds the choices):

- **pulse** (Table 4): fundamental 150-1000 Hz with at least 4 harmonics in 300-4000 Hz (each
  within 15 dB of the fundamental); effective duration ``td`` 75-200 ms (high) or 125-250 ms
  (medium, low); rise time 10-20 % of ``td``; the fall must end before the next pulse starts.
  Chosen: a fundamental plus harmonics 2-5 at -3, -6, -9, -12 dB, a trapezoid envelope with
  raised-cosine ramps of 40 ms (high) and 50 ms (medium, low) from 0 to 100 %, i.e. a 10-90 %
  rise of 24 and 30 ms; ``td`` (between the 50 % points) 150 ms high, 200 ms medium and low.
- **burst** (Table 3): high = 10 pulses spaced x x 2x+td x 0.35-1.30 s x x 2x+td x with
  x = 50-125 ms; medium = 3 pulses spaced y, y = 125-250 ms; low = 1 or 2 pulses spaced y;
  interburst interval 2.5-15 s (high), 2.5-30 s (medium), > 15 s or no repetition (low); pulses
  within 10 dB of each other; ``td`` + y of medium >= ``td`` + x of high.
  Chosen: x = 90 ms, 5th-6th = 550 ms, y = 190 ms, interburst 4 s (high), 8 s (medium), low
  plays once (no repetition); all pulses at one level.

Spacing ``ts`` is measured between the 50 % points (end of one pulse's fall to the start of the
next one's rise); with the ramps chosen the gaps also stay in range when measured at the 10 % or
90 % points, so the signal conforms whichever envelope points a test lab uses.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 48000  # Hz: the native rate of most ALSA codecs (Jetson APE/HDA), no resampling in dmix


@dataclass(frozen=True)
class BurstSpec:
    """One priority's burst: pulse shape, pulse gaps (50 % points) and the interburst interval."""

    priority: str
    f0: float  # fundamental, Hz
    td_s: float  # effective pulse duration (50 % points)
    ramp_s: float  # raised-cosine rise (and fall) from 0 to 100 %
    gaps_s: tuple[float, ...]  # spacing after pulse i (len = pulses - 1)
    interburst_s: float | None  # end of a burst's last pulse to the next burst's first; None = play once
    harmonics_db: tuple[float, ...] = (0.0, -3.0, -6.0, -9.0, -12.0)  # fundamental, 2nd .. 5th

    @property
    def pulses(self) -> int:
        return len(self.gaps_s) + 1

    @property
    def burst_s(self) -> float:
        """From the first pulse's 50 % rise point to the last pulse's 50 % fall point."""
        return self.pulses * self.td_s + sum(self.gaps_s)

    @property
    def period_s(self) -> float | None:
        """Burst start to next burst start (None: the burst is not repeated)."""
        return None if self.interburst_s is None else self.burst_s + self.interburst_s


_X, _Y = 0.090, 0.190  # high-priority pulse spacing x, medium/low spacing y
_TD_HIGH, _TD_MED = 0.150, 0.200

HIGH = BurstSpec("high", 600.0, _TD_HIGH, 0.040, (_X, _X, 2 * _X + _TD_HIGH, _X, 0.550, _X, _X, 2 * _X + _TD_HIGH, _X), 4.0)
MEDIUM = BurstSpec("medium", 500.0, _TD_MED, 0.050, (_Y, _Y), 8.0)
LOW = BurstSpec("low", 400.0, _TD_MED, 0.050, (_Y,), None)
BURSTS: dict[str, BurstSpec] = {b.priority: b for b in (HIGH, MEDIUM, LOW)}


def pulse(spec: BurstSpec, rate: int = RATE) -> np.ndarray:
    """One pulse, peak-normalised to 1.0: harmonic tone under a trapezoid envelope.

    The raised-cosine ramps run ``ramp_s`` from 0 to full scale, so the 50 % points sit half a
    ramp in; the plateau is ``td - ramp`` long so that the 50 %-to-50 % duration is ``td``.
    """
    ramp = int(round(spec.ramp_s * rate))
    flat = int(round((spec.td_s - spec.ramp_s) * rate))
    env = np.concatenate([
        0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp, endpoint=False)),
        np.ones(flat),
        0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, ramp, endpoint=False)),
    ])
    t = np.arange(env.size) / rate
    tone = np.zeros(env.size)
    for k, db in enumerate(spec.harmonics_db, start=1):
        tone += 10 ** (db / 20) * np.sin(2 * np.pi * k * spec.f0 * t)
    x = env * tone
    return x / np.max(np.abs(x))


def burst(spec: BurstSpec, rate: int = RATE, level_dbfs: float = -6.0, lead_s: float = 0.05) -> np.ndarray:
    """The whole burst as float samples in [-1, 1] (peak at ``level_dbfs``), with ``lead_s`` of
    silence before it and after it (so a player starts and drains cleanly)."""
    p = pulse(spec, rate) * 10 ** (level_dbfs / 20)
    half_ramp = spec.ramp_s / 2
    starts = [lead_s]
    for gap in spec.gaps_s:
        # next rise's 50 % point = this fall's 50 % point + gap
        starts.append(starts[-1] + spec.td_s + gap)
    total = starts[-1] + spec.td_s + spec.ramp_s + lead_s
    out = np.zeros(int(np.ceil(total * rate)) + 1)
    for s in starts:
        i = max(0, int(round((s - half_ramp) * rate)))  # the pulse array starts at its 0 % point
        out[i : i + p.size] += p
    return out


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> little-endian int16 (clipped)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")


def wav_bytes(x: np.ndarray, rate: int = RATE) -> bytes:
    """A mono 16-bit WAV file of ``x`` (float in [-1, 1])."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_pcm16(x).tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, x: np.ndarray, rate: int = RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(x, rate))
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A mono 16-bit WAV as float samples and its rate (what ``write_wav`` and ``aplay``'s file sink write)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected mono 16-bit PCM, got {w.getnchannels()} channel(s) of {8 * w.getsampwidth()} bit")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float64) / 32768.0, rate
