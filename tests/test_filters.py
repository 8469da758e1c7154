"""Causal filters: block-cut invariance, what they remove, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.dsp.config import FilterConfig
from edge_ecg.dsp.filters import MonitorFilter, StreamResampler, hold_nan


def _cuts(n: int, sizes: list[int]) -> list[tuple[int, int]]:
    out, a, i = [], 0, 0
    while a < n:
        b = min(a + sizes[i % len(sizes)], n)
        out.append((a, b))
        a, i = b, i + 1
    return out


def _run(make, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    f = make()
    return np.concatenate([f(x[a:b]) for a, b in _cuts(len(x), sizes)])


@pytest.mark.parametrize("sizes", [[1], [37], [5000], [1, 200, 3, 999]])
def test_monitor_filter_same_output_for_any_block_cut(sizes):
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(6000, 2)), axis=0) * 10
    whole = MonitorFilter(360, 2)(x)
    cut = _run(lambda: MonitorFilter(360, 2), x, sizes)
    np.testing.assert_allclose(cut, whole, rtol=0, atol=1e-9)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_notch_removes_mains_and_highpass_removes_wander(mains):
    fs = 500.0
    t = np.arange(int(20 * fs)) / fs
    hum = 300 * np.sin(2 * np.pi * mains * t)
    wander = 2000 * np.sin(2 * np.pi * 0.1 * t)
    qrs_band = 500 * np.sin(2 * np.pi * 10 * t)
    tail = slice(int(10 * fs), None)  # after settling

    def out(x):
        return MonitorFilter(fs, 1, FilterConfig(mains_hz=mains))(x[:, None])[tail, 0]

    assert np.sqrt(np.mean(out(hum) ** 2)) < 0.03 * 300  # mains down by > 30 dB
    assert np.ptp(out(wander)) < 0.05 * np.ptp(wander)  # 0.1 Hz wander down by > 26 dB
    assert np.ptp(out(qrs_band)) > 0.9 * np.ptp(qrs_band)  # the 10 Hz QRS-band content survives


def test_nan_gaps_are_held_not_propagated():
    x = np.arange(10, dtype=float)[:, None].repeat(2, axis=1)
    x[3:6, 0] = np.nan
    last = np.zeros(2)
    y = hold_nan(x, last)
    assert np.isfinite(y).all() and (y[3:6, 0] == 2).all() and (y[:, 1] == x[:, 1]).all()
    assert np.isfinite(MonitorFilter(250, 2)(x)).all()


def test_resampler_500_to_250_keeps_a_sine_and_is_block_invariant():
    fs_in, fs_out = 500.0, 250.0
    t = np.arange(int(10 * fs_in)) / fs_in
    x = (1000 * np.sin(2 * np.pi * 7 * t))[:, None]
    whole = StreamResampler(fs_in, fs_out, 1)(x)
    cut = _run(lambda: StreamResampler(fs_in, fs_out, 1), x, [1, 37, 333])
    np.testing.assert_allclose(cut, whole, atol=1e-9)
    assert len(whole) == len(x) // 2
    r = StreamResampler(fs_in, fs_out, 1)
    d = r.delay_out
    tt = (np.arange(len(whole)) - d) / fs_out
    ref = 1000 * np.sin(2 * np.pi * 7 * tt)
    settle = int(fs_out)
    assert np.max(np.abs(whole[settle:, 0] - ref[settle:])) < 20  # 2% of the amplitude


def test_resampler_360_to_250_rate():
    r = StreamResampler(360, 250, 2)
    out = np.concatenate([r(np.ones((360, 2))) for _ in range(10)])
    assert abs(len(out) - 2500) <= 1
