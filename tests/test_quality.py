"""Signal quality on real ECG with real faults injected: lead-off, flat line, clipping, noise, drift."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.dsp import StreamAnalyzer
from edge_ecg.records import read_record
from edge_ecg.stream.block import SampleBlock


@pytest.fixture(scope="module")
def clean(mitdb_dir):
    return read_record(mitdb_dir / "119.hea").slice(0, 30 * 360)


def _analyze(rec, signals=None, lead_off=None):
    sig = rec.signals if signals is None else signals
    an = StreamAnalyzer(rec.fs, rec.leads)
    step = 360
    ups = []
    for a in range(0, len(sig), step):
        off = None if lead_off is None else lead_off[a : a + step]
        ups.append(an.process(SampleBlock(a, sig[a : a + step], rec.fs, rec.leads, lead_off=off)))
    return an, ups


def test_clean_record_is_usable_everywhere(clean):
    an, ups = _analyze(clean)
    wq = an.window_quality(10 * 360, 20 * 360)
    assert wq.usable and wq.score > 0.9 and wq.coverage == 1.0
    assert not any(q.lead_off or q.flat or q.saturated for q in wq.leads)
    assert ups[-1].quality[0].score > 0.9 and ups[-1].heart_rate is not None


def test_lead_off_flags_from_the_stream(clean):
    off = np.zeros(clean.signals.shape, dtype=bool)
    off[15 * 360 :, 1] = True
    an, ups = _analyze(clean, lead_off=off)
    wq = an.window_quality(20 * 360, 30 * 360)
    assert wq.leads[1].lead_off and not wq.leads[0].lead_off
    assert any("lead off" in n for n in wq.notes)
    assert wq.usable  # one good lead remains
    assert ups[-1].quality[1].lead_off


def test_flat_line_and_clipping(clean):
    sig = clean.signals.copy()
    sig[10 * 360 :, 0] = 12.0  # lead I flat (ADC stuck)
    hi = np.percentile(sig[:, 1], 80)
    sig[:, 1] = np.minimum(sig[:, 1], hi)  # lead V1 railed at its 80th percentile
    an, _ = _analyze(clean, sig)
    wq = an.window_quality(15 * 360, 25 * 360)
    assert wq.leads[0].flat and wq.leads[0].score == 0.0
    assert wq.leads[1].saturated and wq.leads[1].score < 1.0


def test_hf_noise_and_baseline_wander(clean):
    rng = np.random.default_rng(1)
    sig = clean.signals.copy()
    sig[:, 0] += rng.normal(0, 300, size=len(sig)).astype(np.float32)  # muscle-like broadband noise
    t = np.arange(len(sig)) / clean.fs
    sig[:, 1] += (3000 * np.sin(2 * np.pi * 0.3 * t)).astype(np.float32)  # 3 mV respiration drift
    an, _ = _analyze(clean, sig)
    wq = an.window_quality(10 * 360, 20 * 360)
    assert wq.leads[0].noisy and wq.leads[0].score < 0.7
    assert wq.leads[1].baseline_unstable
    assert not an.window_quality(10 * 360, 20 * 360).leads[1].noisy


def test_window_outside_history_has_partial_coverage(clean):
    an, _ = _analyze(clean)
    wq = an.window_quality(-5 * 360, 5 * 360)
    assert wq.coverage == pytest.approx(0.5)
    with pytest.raises(ValueError, match="empty window"):
        an.window_quality(10, 10)
