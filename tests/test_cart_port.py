"""The cart port through real pseudo-terminals and ``CartSimulator``: a CRC-valid frame whose index
jumps a day ahead (in one read with the frames after it) no longer blinds the stream; the port is
held exclusively (TIOCEXCL: another process cannot open it to send STOP); a device whose HELLO
names another cart than the port's by-id name is never streamed from."""

from __future__ import annotations

import errno
import os
import threading
import time

import numpy as np

from edge_ecg.records import Record
from edge_ecg.stream import SourceState
from edge_ecg.stream.serial_source import SerialSource, cart_serial, expected_device_id
from firmware_bridge import Command, encode
from firmware_bridge.cart_sim import CartSimulator, parse_faults
from firmware_bridge.frames import T_STOP
from helpers.sources import read_while_running


def ramp_record(seconds: float = 8.0, fs: float = 500.0) -> Record:
    """Two leads of integer microvolts whose value is the row number (mod 2**20): any sample that is
    placed at the wrong index, or lost, shows at once."""
    n = int(seconds * fs)
    rows = (np.arange(n) % (1 << 20)).astype(np.float32)
    return Record(signals=np.stack([rows, -rows], axis=1), fs=fs, leads=("II", "V1"), name="ramp")


def start_sim(record, **kwargs):
    ready = threading.Event()
    events: list[tuple[str, str]] = []

    def on_event(kind, detail):
        events.append((kind, detail))
        if kind == "pty":
            ready.set()

    sim = CartSimulator(record, on_event=on_event, uv_per_lsb=[1.0] * len(record.leads), **kwargs)
    th = threading.Thread(target=sim.run, daemon=True)
    th.start()
    assert ready.wait(5)
    return sim, th, events


def test_a_day_jump_in_one_read_keeps_every_later_sample_in_place(tmp_path):
    rec = ramp_record(8.0)
    sim, th, events = start_sim(rec, speed=4.0, faults=parse_faults("jump@3:86400"), link=tmp_path / "cart")
    src = SerialSource(str(tmp_path / "cart"))
    try:
        blocks = read_while_running(src, th)
    finally:
        src.close()
        sim.stop()
        th.join(5)
    assert any(k == "jump" for k, _ in events), "the simulator sent the jumped frame"
    assert src.stats.index_anomalies.get("jump") == 1 and src.stats.index_anomalies.get("resumed") == 1, src.stats.index_anomalies
    got = np.zeros(rec.signals.shape[0], dtype=bool)
    for b in blocks:  # every sample sits at its own index (the ramp value is the index)
        assert np.array_equal(b.samples[:, 0], rec.signals[b.start:b.stop, 0]), (b.start, b.gap_reason)
        got[b.start:b.stop] = True
    assert got.all(), f"{int((~got).sum())} samples missing"
    assert blocks[-1].stop == rec.signals.shape[0], "the stream carried on to the end of the record"
    assert sum(b.gap_before for b in blocks) == 0


def _open_as_another_process(path: str) -> int:
    """errno of ``open(path)`` (then a STOP written) from a forked child process, 0 if it opened.

    The child drops to uid/gid nobody when we are root: root's CAP_SYS_ADMIN bypasses TIOCEXCL,
    as the kernel documents, and the appliance's daemon never runs as root.
    """
    stop = encode(Command(T_STOP))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only async-signal-safe work, then _exit
        code = 255
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            os.write(fd, stop)
            code = 0
        except OSError as exc:
            code = exc.errno or 255
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    result = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    return result[0] if result else -1


def test_the_cart_port_is_held_exclusively(tmp_path):
    rec = ramp_record(6.0)
    sim, th, _ = start_sim(rec, speed=1.0)
    os.chmod(sim.path, 0o666)  # so that only TIOCEXCL, not file permissions, can refuse the other opener
    src = SerialSource(sim.path)
    try:
        deadline = time.monotonic() + 10
        while src.state != SourceState.STREAMING and time.monotonic() < deadline:
            src.read(timeout=0.05)
        assert src.state == SourceState.STREAMING
        assert _open_as_another_process(sim.path) == errno.EBUSY
        blocks = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            b = src.read(timeout=0.05)
            if b is not None:
                blocks.append(b)
        assert blocks and src.state == SourceState.STREAMING, "nobody stopped the cart"
    finally:
        src.close()
    assert _open_as_another_process(sim.path) == 0, "the hold ends when the source closes"
    sim.stop()
    th.join(5)


def test_hello_from_another_cart_than_the_port_names_is_not_streamed(tmp_path):
    rec = ramp_record(4.0)
    device_id = 0xEC600000002A
    name = f"usb-EdgeECG_EdgeECG_Cart_{cart_serial(device_id + 1)}-if00"  # udev's by-id name of another cart
    sim, th, _ = start_sim(rec, speed=1.0, link=tmp_path / name, device_id=device_id)
    assert expected_device_id(str(tmp_path / name)) == device_id + 1
    src = SerialSource(str(tmp_path / name), backoff_s=(0.05, 0.1))
    try:
        deadline = time.monotonic() + 5
        while src.stats.wrong_device == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert src.read(timeout=0.3) is None and src.stats.samples == 0
        assert f"answered HELLO as {cart_serial(device_id)}" in src.stats.last_error
        assert src.state == SourceState.LOST
    finally:
        src.close()
        sim.stop()
        th.join(5)
    # the right cart behind its own by-id name streams
    good = f"usb-EdgeECG_EdgeECG_Cart_{cart_serial(device_id)}-if00"
    sim, th, _ = start_sim(rec, speed=1.0, link=tmp_path / good, device_id=device_id)
    src = SerialSource(str(tmp_path / good))
    try:
        assert src.read(timeout=5) is not None
    finally:
        src.close()
        sim.stop()
        th.join(5)
