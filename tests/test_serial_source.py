"""SerialSource against real pseudo-terminals: unplug/replug of a cart process, a missing device,
and the promise that reading never blocks the caller for longer than it asked."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.stream import SourceState
from edge_ecg.stream.serial_source import SerialSource
from firmware_bridge.cart_sim import spawn_cart_sim
from helpers.sources import drain_after_exit

REPO = Path(__file__).resolve().parents[1]


def record_counts(hea: Path) -> tuple[np.ndarray, np.ndarray]:
    import wfdb

    raw = wfdb.rdrecord(str(hea.with_suffix("")), physical=False)
    return raw.d_signal.astype(np.int64) - np.asarray(raw.baseline, dtype=np.int64), np.asarray(raw.adc_gain)


@pytest.mark.slow
@pytest.mark.shared_data
def test_unplug_replug_reconnects_within_2s_and_reports_the_gap(ludb_dir, tmp_path):
    hea = sorted((ludb_dir / "data").glob("*.hea"))[0]  # a 10 s, 500 Hz, 12-lead record
    expected, gain = record_counts(hea)
    link = tmp_path / "usb-EdgeECG_Cart-if00"  # stable name, like /dev/serial/by-id
    unplug_at, unplugged_s = 3.0, 1.5
    proc, path = spawn_cart_sim(hea, "--speed", "1", "--link", str(link), "--faults", f"unplug@{unplug_at}+{unplugged_s}", cwd=REPO)
    assert path == str(link)
    states: list[tuple[float, SourceState]] = []
    src = SerialSource(path, on_state=lambda s, detail: states.append((time.monotonic(), s)))
    blocks, link_gone, link_back, first_path = [], None, None, os.path.realpath(link)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            block = src.read(timeout=0.005)
            if block is not None:
                blocks.append(block)
            exists = link.is_symlink()
            if link_gone is None and not exists and blocks:
                link_gone = time.monotonic()
            if link_gone is not None and link_back is None and exists:
                link_back = time.monotonic()
                new_path = os.path.realpath(link)
            if proc.poll() is not None:
                blocks += drain_after_exit(src, deadline)
                break
    finally:
        src.close()
        proc.kill()
        proc.wait()
    assert link_gone is not None and link_back is not None, "the cart was never unplugged and replugged"
    # (the new pty may reuse the old number: the kernel hands out the lowest free one)
    assert new_path.startswith("/dev/") and first_path.startswith("/dev/")
    lost = [t for t, s in states if s == SourceState.LOST and t >= link_gone - 0.5]
    assert lost and lost[0] < link_back  # the unplug was reported while the device was gone
    streaming_again = [t for t, s in states if s == SourceState.STREAMING and t > link_back]
    assert streaming_again, states
    assert streaming_again[0] - link_back < 2.0  # reconnected and streaming within 2 s of replug
    assert src.stats.reconnects == 1, (states, src.stats)
    # the index carried on: one gap, the size of the time the cart was away (plus the handshake),
    # and every sample on either side sits at its own index with the record's exact counts
    gaps = [b for b in blocks if b.gap_before]
    assert len(gaps) == 1
    fs = blocks[0].fs
    assert unplugged_s * fs * 0.9 <= gaps[0].gap_before <= (unplugged_s + 2.0) * fs
    assert gaps[0].start == gaps[0].gap_before + sum(b.n for b in blocks if b.start < gaps[0].start)
    lsb = np.asarray(src.hello.uv_per_lsb)
    assert lsb == pytest.approx(1000.0 / gain)  # per lead: LUDB's leads have different gains
    for b in blocks:
        got = np.round(b.samples.astype(np.float64) / lsb).astype(np.int64)
        assert np.array_equal(got, expected[b.start : b.stop])
    assert blocks[-1].stop == expected.shape[0]


def test_missing_device_is_lost_and_reading_never_blocks(tmp_path):
    src = SerialSource(str(tmp_path / "no-such-cart"), backoff_s=(0.05, 0.2))
    try:
        t = time.monotonic()
        assert src.read(timeout=0.2) is None
        assert time.monotonic() - t < 0.5
        t = time.monotonic()
        assert src.read(timeout=0) is None
        assert time.monotonic() - t < 0.05
        deadline = time.monotonic() + 3
        while src.state != SourceState.LOST and time.monotonic() < deadline:
            time.sleep(0.02)
        assert src.state == SourceState.LOST
        assert "no-such-cart" in src.stats.last_error
    finally:
        t = time.monotonic()
        src.close()
        assert time.monotonic() - t < 2.5
    assert src.state == SourceState.CLOSED
    assert list(src) == []  # iteration ends once closed


def test_bare_name_means_the_by_id_link():
    src = SerialSource("usb-EdgeECG_Cart_0001-if00", start=False)
    assert src.port == "/dev/serial/by-id/usb-EdgeECG_Cart_0001-if00"
    assert SerialSource("/dev/ttyACM0", start=False).port == "/dev/ttyACM0"


def _run_sim(record, **kwargs):
    import threading

    from firmware_bridge.cart_sim import CartSimulator

    ready = threading.Event()
    sim = CartSimulator(record, on_event=lambda k, d: ready.set() if k == "pty" else None, **kwargs)
    th = threading.Thread(target=sim.run, daemon=True)
    th.start()
    assert ready.wait(5)
    return sim, th


@pytest.mark.shared_data
def test_a_rebooted_cart_is_rebased_and_a_slow_consumer_sees_gaps(ludb_dir, tmp_path):
    from edge_ecg.records import read_record

    record = read_record(sorted((ludb_dir / "data").glob("*.hea"))[0])
    link = tmp_path / "cart"
    sim, th = _run_sim(record, speed=2.0, link=link, session_id=111)
    src = SerialSource(str(link), queue_blocks=3)
    try:
        time.sleep(1.0)  # the consumer does not read: the 3-block queue overflows
        first = [src.read(timeout=0.5) for _ in range(6)]
        assert src.stats.queue_overruns > 0
        assert first[0].gap_before > 0  # what was dropped shows up as a gap
        assert all(b.start == a.stop and b.gap_before == 0 for a, b in zip(first, first[1:]))
        # the cart "reboots": gone for a moment, back with a new session and its index at 0
        sim.stop()
        th.join(5)
        stop_before = first[-1].stop
        while (b := src.read(timeout=0.3)) is not None:
            stop_before = b.stop
        sim2, th2 = _run_sim(record, speed=2.0, link=link, session_id=222)
        deadline = time.monotonic() + 10
        after = None
        while after is None and time.monotonic() < deadline:
            after = src.read(timeout=0.1)
        sim2.stop()
        th2.join(5)
    finally:
        src.close()
    assert after is not None and src.hello.session_id == 222
    assert after.start > stop_before and after.gap_before == after.start - stop_before  # index keeps increasing
    assert src.stats.reconnects == 1


def test_a_device_speaking_another_protocol_version_is_not_streamed(tmp_path):
    """A hand-driven device on a real pty that answers HELLO with protocol version 2."""
    import os as _os
    import threading
    import tty

    from firmware_bridge import Decoder, Hello, encode

    master, slave = _os.openpty()
    tty.setraw(slave)
    link = tmp_path / "future-cart"
    link.symlink_to(_os.ttyname(slave))
    stop = threading.Event()
    commands = []

    def device():
        dec = Decoder()
        hello = Hello(device_id=1, session_id=2, fs=500.0, uv_per_lsb=(1.0,), leads=("II",), protocol_version=2)
        while not stop.is_set():
            import select as _select

            if _select.select([master], [], [], 0.05)[0]:
                for frame in dec.feed(_os.read(master, 4096)):
                    commands.append(frame)
                    _os.write(master, encode(hello))

    th = threading.Thread(target=device, daemon=True)
    th.start()
    src = SerialSource(str(link), backoff_s=(0.05, 0.1))
    try:
        deadline = time.monotonic() + 5
        while "protocol 2" not in src.stats.last_error and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "device speaks protocol 2, this host 1" in src.stats.last_error
        assert src.state == SourceState.LOST and src.hello is None and src.read(timeout=0.1) is None
        assert all(getattr(c, "kind", None) == 0x80 for c in commands)  # asked for HELLO, never sent START
    finally:
        src.close()
        stop.set()
        th.join(2)
        _os.close(master)
        _os.close(slave)
