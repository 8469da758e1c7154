"""ReplaySource sends a record's pulse waves (PLETH/ABP) beside the leads, at their own rate."""

from __future__ import annotations

import numpy as np

from edge_ecg.records import Record, read_record
from edge_ecg.stream.replay_source import ReplaySource


def _record(fs=500.0, pulse_fs=125.0, seconds=7.3):
    n = int(seconds * fs)
    ecg = np.zeros((n, 2), np.float32)
    pleth = np.arange(int(seconds * pulse_fs), dtype=np.float32)  # sample k holds k: alignment is checkable
    abp = np.arange(n, dtype=np.float32)
    meta = {"other_signals": {"PLETH": pleth, "ABP": abp, "RESP": abp}, "other_signals_fs": {"PLETH": pulse_fs}}
    return Record(signals=ecg, fs=fs, leads=("II", "V"), name="synthetic", meta=meta)


def test_pulse_at_a_quarter_of_the_ecg_rate_tiles_without_loss_and_stays_aligned():
    rec = _record()
    blocks = list(ReplaySource(rec, speed=0, block_s=0.1, loop=2))
    pleth = [ch for b in blocks for ch in b.aux if ch.name == "PLETH"]
    assert {ch.name for b in blocks for ch in b.aux} == {"PLETH", "ABP"}  # RESP is no pulse
    assert all(ch.fs == 125.0 and ch.unit == "NU" for ch in pleth)
    # consecutive chunks tile the channel's own index; 12 or 13 samples per 0.1 s block
    for a, b in zip(pleth, pleth[1:]):
        assert b.start == a.stop
    assert {ch.n for ch in pleth} <= {12, 13}
    for blk, ch in zip(blocks, pleth):
        assert abs(ch.start / ch.fs - blk.start / blk.fs) < 1.0 / ch.fs  # same stream time
    first = np.concatenate([ch.samples for ch in pleth])
    n = rec.meta["other_signals"]["PLETH"].size
    assert np.array_equal(first[:n], rec.meta["other_signals"]["PLETH"])  # first loop: every sample, in order
    abp = [ch for b in blocks for ch in b.aux if ch.name == "ABP"]
    assert all(ch.fs == 500.0 and ch.unit == "mmHg" and ch.n == b.n for ch, b in zip(abp, blocks))


def test_a_replay_span_starts_the_pulse_at_the_same_moment():
    rec = _record()
    blocks = list(ReplaySource(rec, speed=0, start_s=2.0, stop_s=4.0, block_s=1.0))
    ch = blocks[0].aux[0]
    assert ch.name == "PLETH" and ch.start == 0 and ch.samples[0] == 250.0  # 2 s at 125 Hz


def test_cinc_records_replay_with_their_pulse(cinc_vt_dir):
    rec = read_record(cinc_vt_dir / "v100s.hea")  # two ECG leads, PLETH and RESP at 250 Hz
    blk = next(iter(ReplaySource(rec, speed=0, block_s=1.0)))
    names = {ch.name for ch in blk.aux}
    assert names == {"PLETH"}
    assert all(ch.n == 250 and ch.fs == rec.fs for ch in blk.aux)
