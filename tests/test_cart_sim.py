"""The cart simulator on a real pty: protocol answers, fault parsing, and faults seen through
SerialSource (garbage, bit flips, dropped bytes, a stall, electrodes off) on a real LUDB record."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import serial

from edge_ecg.records import read_record
from edge_ecg.stream import SourceState
from edge_ecg.stream.serial_source import SerialSource
from firmware_bridge import Command, Decoder, Hello, Pong, Samples, Status, encode
from firmware_bridge.cart_sim import CartSimulator, FaultSpecError, infer_uv_per_lsb, parse_faults
from firmware_bridge.frames import ELECTRODE_BIT, T_GET_HELLO, T_PING, T_START, T_STOP
from helpers.sources import read_while_running


@pytest.fixture(scope="module")
def ludb_record(ludb_dir):
    return read_record(sorted((ludb_dir / "data").glob("*.hea"))[0])


def start_sim(record, **kwargs) -> tuple[CartSimulator, threading.Thread]:
    events = []
    sim = CartSimulator(record, on_event=lambda k, d: events.append(k), **kwargs)
    th = threading.Thread(target=sim.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    return sim, th


def test_fault_specs_parse_and_bad_ones_name_the_item():
    faults = parse_faults("unplug@30+1.5, garbage@12:300,leadoff@4+2:LA+V2,drop@1+2")
    assert [f.kind for f in faults] == ["unplug", "garbage", "leadoff", "drop"]
    assert faults[0].duration_s == 1.5 and faults[1].param == "300" and faults[3].param == "0.01"
    for bad, msg in [("melt@3", "unknown kind"), ("stall@x", "expected KIND@START"), ("stall@3", r"needs a \+DURATION"),
                     ("leadoff@1+1:XX", "unknown electrode"), ("drop@-1+1", "negative")]:
        with pytest.raises(FaultSpecError, match=msg) as exc:
            parse_faults(f"garbage@1,{bad}")
        assert bad in str(exc.value)


def test_lsb_is_inferred_per_lead_from_real_data(ludb_record):
    lsb = [infer_uv_per_lsb(ludb_record.signals[:, j]) for j in range(ludb_record.signals.shape[1])]
    counts = ludb_record.signals / np.asarray(lsb, dtype=np.float64)
    assert np.abs(counts - np.round(counts)).max() < 1e-3
    # data that is not on an ADC grid falls back to a quantising 1 uV step
    assert infer_uv_per_lsb(np.random.default_rng(0).normal(0, 300, 1000)) == 1.0


def test_cart_answers_hello_start_ping_stop_on_the_wire(ludb_record):
    sim, th = start_sim(ludb_record, speed=1.0)
    try:
        port = serial.Serial(sim.path, timeout=0.05, exclusive=True)
        dec = Decoder()
        frames: list = []

        def pump(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                frames.extend(dec.feed(port.read(4096)))

        port.write(encode(Command(T_PING, 99)))
        pump(0.3)
        assert frames == [Pong(99, 0)]  # alive, not streaming before START, clock not started
        port.write(encode(Command(T_GET_HELLO)) + encode(Command(T_START)))
        pump(1.3)
        port.write(encode(Command(T_STOP)))
        pump(0.3)
        n_after_stop = len(frames)
        pump(0.4)
        assert len(frames) == n_after_stop  # STOP stops the stream
        hello = frames[1]
        assert isinstance(hello, Hello) and hello.leads == ludb_record.leads and hello.fs == 500.0
        samples = [f for f in frames if isinstance(f, Samples)]
        assert samples[0].index == 0 and all(b.index == a.index + a.n_rows for a, b in zip(samples, samples[1:])), [(f.index, f.n_rows) for f in samples]
        assert 400 < sum(f.n_rows for f in samples) < 1000  # about 1.3-1.6 s at 500 Hz, in real time
        assert any(isinstance(f, Status) for f in frames)
        port.close()
    finally:
        sim.stop()
        th.join(5)


@pytest.mark.slow
def test_faults_through_the_source_gaps_are_exact_and_leadoff_is_flagged(ludb_record):
    # at 2x: the 2 s (of signal) stall is 1 s of wall time, longer than stall_s and the 0.5 s ring
    faults = parse_faults("garbage@1:500,bitflip@2+0.5:0.002,drop@3+0.5:0.002,stall@4+2,leadoff@6.5+1:LA")
    sim, th = start_sim(ludb_record, speed=2.0, faults=faults, ring_s=0.5, seed=4)
    states: list[SourceState] = []
    lsb = np.asarray(sim.uv_per_lsb)
    expected = np.round(ludb_record.signals / lsb).astype(np.int64)
    src = SerialSource(sim.path, stall_s=0.5, on_state=lambda s, d: states.append(s))
    blocks = []
    try:
        blocks = read_while_running(src, th, timeout_s=15)
    finally:
        src.close()
        sim.stop()
        th.join(5)
    got = np.zeros(len(expected), dtype=bool)
    for b in blocks:  # every sample that arrived sits at its index with the record's exact value
        counts = np.round(b.samples.astype(np.float64) / lsb).astype(np.int64)
        assert np.array_equal(counts, expected[b.start : b.stop])
        got[b.start : b.stop] = True
    first, last = blocks[0].start, blocks[-1].stop
    missing = int((~got[first:last]).sum())
    assert missing > 0 and sum(b.gap_before for b in blocks) == missing == src.stats.samples_missing
    assert src.stats.bad_frames > 0  # garbage, flipped and dropped bytes were seen and skipped
    assert sim.dropped_rows > 0  # the stall outlasted the 0.5 s ring
    assert SourceState.STALLED in states and states[-1] == SourceState.CLOSED
    assert states[states.index(SourceState.STALLED) + 1] == SourceState.STREAMING  # recovered
    assert src.stats.reconnects == 0
    # electrodes: LA off from 6.5 s to 7.5 s flags every lead that uses LA, and only in that span
    fs, leads = blocks[0].fs, blocks[0].leads
    off = np.zeros((len(expected), len(leads)), dtype=bool)
    for b in blocks:
        if b.lead_off is not None:
            off[b.start : b.stop] = b.lead_off
    span = np.zeros(len(expected), dtype=bool)
    span[int(6.5 * fs) : int(7.5 * fs)] = True
    uses_la = np.array([lead != "II" for lead in leads])  # II is RA-LL; every other lead needs LA
    assert np.array_equal(off[got], (span[:, None] & uses_la[None, :])[got])
    assert ELECTRODE_BIT["LA"] == 2


def test_cli_errors_name_the_bad_input(tmp_path, capsys):
    from edge_ecg.cli import main

    assert main(["cart-sim", str(tmp_path / "x.hea"), "--faults", "melt@3"]) == 2
    assert "--faults: fault 'melt@3': unknown kind" in capsys.readouterr().err
    assert main(["cart-sim", str(tmp_path / "x.hea")]) == 2
    assert "x.hea: no such WFDB header file" in capsys.readouterr().err


def test_a_record_the_protocol_cannot_carry_is_refused_by_name():
    from edge_ecg.errors import RecordError
    from edge_ecg.records.record import Record

    rec = Record(signals=np.zeros((10, 1), np.float32), fs=500.0, leads=("VERYLONGNAME",), name="odd-cart")
    with pytest.raises(RecordError, match="odd-cart: cannot be sent by a cart: HELLO: lead name 'VERYLONGNAME'"):
        CartSimulator(rec)
