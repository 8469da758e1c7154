"""The reference cart firmware (C99) compiled with gcc and run on the host: its unit tests, its
side of the shared vectors, and streams crossing between the C and the Python codec both ways.

The firmware's hardware (ADS129x, USB device port) does not exist here; tests/hal_host.c is the
test double behind hal.h, scripting the ADC with a known sequence that Python reproduces.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import Command, Decoder, Hello, Pong, Samples, Status, encode
from firmware_bridge.frames import PACER_BIT, T_GET_HELLO, T_PING, T_START, T_STOP

FW = Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware"
VECTORS = FW.parent / "vectors"


@pytest.fixture(scope="module")
def firmware_bin(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the C firmware cannot be built on this machine")
    out = tmp_path_factory.mktemp("fw") / "test_firmware"
    sources = sorted(str(p) for p in (FW / "src").glob("*.c")) + sorted(str(p) for p in (FW / "tests").glob("*.c"))
    cmd = [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2",
           f"-I{FW / 'include'}", f"-I{FW / 'tests'}", *sources, "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"gcc failed:\n{res.stderr}"
    return out


def test_firmware_builds_warning_free_and_its_unit_tests_and_vectors_pass(firmware_bin):
    res = subprocess.run([str(firmware_bin), str(VECTORS)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    checks = int(res.stdout.split()[0])
    assert checks > 200 and "0 failures" in res.stdout


def test_firmware_vector_check_fails_on_a_changed_byte(firmware_bin, tmp_path):
    # the C vector check can fail: flip one byte of one committed vector in a copy
    copy = tmp_path / "vectors"
    shutil.copytree(VECTORS, copy)
    wire = bytearray((copy / "status.bin").read_bytes())
    wire[5] ^= 0x01
    (copy / "status.bin").write_bytes(bytes(wire))
    res = subprocess.run([str(firmware_bin), str(copy)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "vector status" in res.stderr


def _lcg(s: int) -> int:
    return (s * 1103515245 + 12345) & 0xFFFFFFFF


def expected_conversions(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """What tests/hal_host.c's scripted ADS129x produces: values (n, 8) and row status words."""
    values = np.zeros((n, 8), dtype=np.int32)
    status = np.zeros(n, dtype=np.uint16)
    s = seed
    for k in range(n):
        s = _lcg(s)
        statp = statn = 0
        if (s >> 4) & 0x7 == 0:
            statp, statn = (s >> 24) & 0xFF, (s >> 16) & 0x3
        bits = (1 if statn else 0) | ((statp & 1) << 1) | (((statp >> 1) & 1) << 2)
        for v in range(6):
            if statp & (1 << (2 + v)):
                bits |= 1 << (3 + v)
        if (s >> 8) & 0x1F == 0:
            bits |= PACER_BIT
        status[k] = bits
        for ch in range(8):
            s = _lcg(s)
            u = (s >> 8) & 0xFFFFFF
            values[k, ch] = (u ^ 0x800000) - 0x800000
    return values, status


def test_python_decodes_what_the_c_cart_sends(firmware_bin, tmp_path):
    stream = tmp_path / "cart.bin"
    res = subprocess.run([str(firmware_bin), "--write-stream", str(stream)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    summary = dict(item.split("=") for item in res.stdout.split())
    conversions, dropped, faults = int(summary["conversions"]), int(summary["dropped"]), int(summary["faults"])
    assert dropped > 0 and faults == 1  # the scripted stall overflowed the ring; one SPI fault
    dec = Decoder()
    data = stream.read_bytes()
    frames = [f for i in range(0, len(data), 777) for f in dec.feed(data[i : i + 777])]
    assert dec.stats.bad_frames == 0
    hello = frames[0]
    assert isinstance(hello, Hello) and hello.leads == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    assert hello.fs == 500.0 and hello.uv_per_lsb == (0.0476837158203125,) * 2 + (0.095367431640625,) + (0.0476837158203125,) * 5
    values, status = expected_conversions(12345, conversions)
    samples = [f for f in frames if isinstance(f, Samples)]
    got = np.zeros(conversions, dtype=bool)
    for f in samples:
        rows = np.arange(f.index, f.index + f.n_rows)
        assert np.array_equal(f.values, values[rows]) and np.array_equal(f.status, status[rows])
        got[rows] = True
    assert (status[got] & PACER_BIT).any() and (status[got] & 0x1FF).any()  # lead-off and pacer bits crossed
    # every conversion between the first and the last sent row arrived, except exactly the
    # dropped and the faulty ones, and the decoder reported them as missing samples
    first, last = samples[0].index, samples[-1].index + samples[-1].n_rows
    assert int((~got[first:last]).sum()) == dropped + faults == dec.stats.samples_missing
    statuses = [f for f in frames if isinstance(f, Status)]
    assert statuses and statuses[-1].dropped_rows == dropped and statuses[-1].errors & 0x3 == 0x3
    assert any(isinstance(f, Pong) and f.nonce == 0xABCD for f in frames)


def test_c_receiver_decodes_what_python_sends(firmware_bin, tmp_path):
    rng = np.random.default_rng(3)
    frames = [Command(T_GET_HELLO), Command(T_START), Command(T_PING, 0xDEADBEEF), Command(T_STOP),
              Hello(device_id=5, session_id=6, fs=360.0, uv_per_lsb=(5.0, 5.0), leads=("II", "V1")),
              Status(errors=9, dropped_rows=4), Pong(nonce=77)]
    expected = ["CMD 128 0", "CMD 129 0", "CMD 131 3735928559", "CMD 130 0", "HELLO 2 6 360000", "STATUS 9 4", "PONG 77"]
    wire = b"".join(encode(f) for f in frames)
    bad = 0
    for k in range(50):
        leads = int(rng.integers(1, 17))
        rows = int(rng.integers(1, 4000 // (2 + 3 * leads)))
        vals = rng.integers(-(1 << 23), 1 << 23, size=(rows, leads)).astype(np.int32)
        vals[:, 0] = rng.integers(-300, 300, size=rows)
        st = rng.integers(0, 1 << 16, size=rows).astype(np.uint16)
        frame = encode(Samples(index=k * 1000, values=vals, status=st))
        if k % 10 == 3:  # a corrupted copy first: the C receiver must skip it and count it
            broken = bytearray(frame)
            broken[len(broken) // 2] ^= 0x40
            wire += bytes(broken)
            bad += 1
        if k % 10 == 7:
            wire += bytes(rng.integers(1, 256, size=40).astype(np.uint8)) + b"\0"  # a garbage burst
            bad += 1
        wire += frame
        xor = 0
        for s in st.tolist():
            xor ^= s
        expected.append(f"SAMPLES {k * 1000} {rows} {leads} {int(vals.astype(np.int64).sum())} {xor}")
    path = tmp_path / "host.bin"
    path.write_bytes(wire)
    res = subprocess.run([str(firmware_bin), "--read-stream", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:-1] == expected
    assert lines[-1] == f"BAD {bad}"
