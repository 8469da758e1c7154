"""A whole MIT-BIH DS1 record through the cart simulator (its own process, a real pty) and back
through SerialSource (pyserial): every integer ADC count arrives, at its own sample index."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.stream import SourceState
from edge_ecg.stream.serial_source import SerialSource
from firmware_bridge.cart_sim import spawn_cart_sim
from helpers.sources import drain_after_exit

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.shared_data
def test_whole_mitdb_record_round_trips_exactly(mitdb_dir, tmp_path):
    import wfdb

    hea = sorted(mitdb_dir.glob("*.hea"))[0]  # one whole 30-min record: the first of DS1
    raw = wfdb.rdrecord(str(hea.with_suffix("")), physical=False)
    expected = raw.d_signal.astype(np.int64) - np.asarray(raw.baseline, dtype=np.int64)
    # 250x real time with the default 20 ms frames, and a ring as long as the record: on a busy
    # machine the link's back-pressure paces the cart, so nothing may be lost.
    proc, path = spawn_cart_sim(hea, "--speed", "250", "--ring-s", "4000",
                                "--link", str(tmp_path / "cart"), cwd=REPO)
    blocks = []
    src = SerialSource(path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            block = src.read(timeout=0.2)
            if block is not None:
                blocks.append(block)
            elif proc.poll() is not None:
                # the cart exited after its last frame was read; drain what the reader holds
                blocks += drain_after_exit(src, deadline)
                break
        hello = src.hello
    finally:
        src.close()
        proc.kill()
        proc.wait()
    assert hello is not None and hello.leads == ("II", "V1") and hello.fs == 360.0
    assert hello.uv_per_lsb == pytest.approx(1000.0 / np.asarray(raw.adc_gain))  # 5 uV per count (200 counts/mV)
    assert blocks[0].start == 0 and all(b.gap_before == 0 for b in blocks)
    assert all(b.start == a.stop for a, b in zip(blocks, blocks[1:]))
    samples = np.concatenate([b.samples for b in blocks])
    counts = np.round(samples.astype(np.float64) / np.asarray(hello.uv_per_lsb)).astype(np.int64)
    assert counts.shape == expected.shape == (650000, 2)
    assert np.array_equal(counts, expected)
    assert src.stats.bad_frames == 0 and src.stats.reconnects == 0 and src.state == SourceState.CLOSED
