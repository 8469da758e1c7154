"""Every record of the MIT-BIH DS1 folder: the simulator's per-lead LSB inference recovers the
exact ADC counts from what the record reader returns, and a minute of each crosses the codec
(20 ms SAMPLES frames, decoded from 4 KiB reads) without a count changing."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.records import read_record
from firmware_bridge import Decoder, Samples, encode
from firmware_bridge.cart_sim import infer_uv_per_lsb


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_ds1_record_crosses_the_codec_with_exact_counts(mitdb_dir):
    import wfdb

    heas = sorted(mitdb_dir.glob("*.hea"))
    assert len(heas) >= 20
    n = 60 * 360  # the first minute of each
    for hea in heas:
        rec = read_record(hea)
        lsb = np.array([infer_uv_per_lsb(rec.signals[:, j]) for j in range(rec.signals.shape[1])])
        raw = wfdb.rdrecord(str(hea.with_suffix("")), physical=False, sampto=n)
        truth = raw.d_signal.astype(np.int64) - np.asarray(raw.baseline, dtype=np.int64)
        assert lsb == pytest.approx(1000.0 / np.asarray(raw.adc_gain)), hea.name
        counts = np.round(rec.signals[:n] / lsb).astype(np.int32)
        assert np.array_equal(counts, truth), hea.name
        wire = b"".join(encode(Samples(i, counts[i : i + 7], np.zeros(len(counts[i : i + 7]), np.uint16))) for i in range(0, n, 7))
        dec = Decoder()
        frames = [f for i in range(0, len(wire), 4096) for f in dec.feed(wire[i : i + 4096])]
        got = np.concatenate([f.values for f in frames])
        assert np.array_equal(got, truth) and dec.stats.bad_frames == 0, hea.name
