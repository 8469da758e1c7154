"""Causal, stateful filters: a stream cut into any blocks gives the same output as one call.

Every filter here is scipy's (``butter``/``iirnotch`` designs, ``sosfilt``/``lfilter`` with the
final state carried into the next call), so the only hand-written part is the state bookkeeping
and the gap handling: NaN samples (gaps) are held at the last finite value before filtering,
because one NaN inside an IIR state poisons every later output.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from edge_ecg.dsp.config import FilterConfig
from edge_ecg.errors import InputError


def _check_fs(fs: float, what: str) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(what, f"sampling rate must be a positive number, got {fs!r}")
    return fs


def hold_nan(x: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Replace NaN by the previous finite value of the same lead (``last`` carries across blocks).

    ``x`` is (n, leads); ``last`` (leads,) is updated in place. Vectorised forward fill.
    """
    bad = ~np.isfinite(x)
    if not bad.any():
        if x.shape[0]:
            last[:] = x[-1]
        return x
    x = np.array(x, dtype=np.float64, copy=True)
    n = x.shape[0]
    for j in range(x.shape[1]):
        b = bad[:, j]
        if not b.any():
            last[j] = x[-1, j]
            continue
        idx = np.where(~b, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        col = x[:, j]
        filled = np.where(idx >= 0, col[np.maximum(idx, 0)], last[j])
        x[:, j] = filled
        last[j] = filled[-1]
    return x


class SosStream:
    """A second-order-sections IIR filter applied along axis 0 with carried state, per lead."""

    def __init__(self, sos: np.ndarray, n_leads: int) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_leads = int(n_leads)
        self.zi: np.ndarray | None = None

    def reset(self) -> None:
        self.zi = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter (n, leads) samples; the first call starts from the steady state of the first sample."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return x.copy()
        if self.zi is None:
            zi0 = signal.sosfilt_zi(self.sos)  # (sections, 2) for a unit step
            self.zi = zi0[:, :, None] * x[0][None, None, :]
        y, self.zi = signal.sosfilt(self.sos, x, axis=0, zi=self.zi)
        return y


class FirStream:
    """An FIR filter (numerator only) along axis 0 with carried state, per lead."""

    def __init__(self, b: np.ndarray, n_leads: int) -> None:
        self.b = np.asarray(b, dtype=np.float64)
        self.n_leads = int(n_leads)
        self.zi = np.zeros((len(self.b) - 1, self.n_leads))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0 or len(self.b) == 1:
            return x * self.b[0]
        y, self.zi = signal.lfilter(self.b, [1.0], x, axis=0, zi=self.zi)
        return y


def monitor_sos(fs: float, cfg: FilterConfig) -> np.ndarray:
    """The monitoring front end as one SOS cascade: high-pass (baseline), notch (mains), low-pass (band)."""
    fs = _check_fs(fs, "filter design")
    nyq = fs / 2
    parts = []
    if cfg.highpass_hz and cfg.highpass_hz > 0:
        parts.append(signal.butter(2, cfg.highpass_hz, btype="highpass", fs=fs, output="sos"))
    if cfg.mains_hz and cfg.mains_hz < nyq * 0.98:
        b, a = signal.iirnotch(cfg.mains_hz, cfg.notch_q, fs=fs)
        parts.append(signal.tf2sos(b, a))
    if cfg.lowpass_hz and cfg.lowpass_hz < nyq * 0.95:
        parts.append(signal.butter(4, cfg.lowpass_hz, btype="lowpass", fs=fs, output="sos"))
    if not parts:
        return np.array([[1.0, 0, 0, 1.0, 0, 0]])
    return np.vstack(parts)


class MonitorFilter:
    """Baseline removal + mains notch + band limit for all leads of a stream, causal and stateful."""

    def __init__(self, fs: float, n_leads: int, cfg: FilterConfig | None = None) -> None:
        self.cfg = cfg or FilterConfig()
        self.fs = _check_fs(fs, "MonitorFilter")
        self._sos = SosStream(monitor_sos(self.fs, self.cfg), n_leads)
        self._last = np.zeros(n_leads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._sos(hold_nan(np.asarray(x, dtype=np.float64), self._last))


class StreamResampler:
    """Rational-rate resampling of a stream (e.g. 500 Hz cart -> 250 Hz analysis), causal and stateful.

    Polyphase by zero-stuffing and a carried-state FIR (``scipy.signal.firwin`` design, Kaiser
    window) and decimation with a carried phase: ``resample_poly`` would do the same maths but
    has no state, so block edges would click.
    """

    def __init__(self, fs_in: float, fs_out: float, n_leads: int, taps_per_phase: int = 16) -> None:
        self.fs_in = _check_fs(fs_in, "StreamResampler fs_in")
        self.fs_out = _check_fs(fs_out, "StreamResampler fs_out")
        ratio = Fraction(self.fs_out / self.fs_in).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        cutoff = 0.9 * min(self.fs_in, self.fs_out) / 2
        ntaps = taps_per_phase * max(self.up, self.down) + 1
        h = signal.firwin(ntaps, cutoff, window=("kaiser", 6.0), fs=self.fs_in * self.up) * self.up
        self._fir = FirStream(h, n_leads) if self.up > 1 or self.down > 1 else None
        self._phase = 0  # index (in the up-sampled stream) of the next output sample, relative to block start
        self._last = np.zeros(n_leads)
        self.delay_out = (ntaps - 1) / 2 / self.down  # group delay in output samples

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = hold_nan(np.asarray(x, dtype=np.float64), self._last)
        if self._fir is None:
            return x
        n_up = x.shape[0] * self.up
        xu = np.zeros((n_up, x.shape[1]))
        xu[:: self.up] = x
        y = self._fir(xu)
        out = y[self._phase :: self.down]
        self._phase = (self._phase - n_up) % self.down
        return out
