"""The JSONL event log: durable per append, survives SIGKILL, a torn last line is skipped on restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_ecg.alarms.event_log import EventLog, read_events

REPO = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, time
from edge_ecg.alarms.event_log import EventLog
log = EventLog(sys.argv[1])
i = 0
while True:
    log.append({"kind": "raised", "alarm": "asystole", "i": i, "pad": "x" * 200})
    print(i, flush=True)   # printed only after append (and its fsync) returned
    i += 1
"""


def test_events_survive_sigkill_of_a_real_writer_process(tmp_path):
    path = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    acknowledged = []
    deadline = time.monotonic() + 20
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        acknowledged.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert len(acknowledged) >= 40
    contents = read_events(path)
    logged = [e["i"] for e in contents.events]
    assert set(acknowledged) <= set(logged), "every append that returned before the kill is in the log"
    assert logged == list(range(len(logged))), "records are in order with no holes"
    assert len(contents.skipped) <= 1


def test_torn_last_line_is_skipped_and_sealed_on_restart(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        log.append({"kind": "raised", "alarm": "asystole"})
        log.append({"kind": "latched", "alarm": "asystole"})
    with open(path, "ab") as f:  # what a power cut in the middle of a write leaves
        f.write(b'{"seq":3,"kind":"rai')
    log = EventLog(path)  # restart: not fatal
    assert log.recovered_torn_bytes == len(b'{"seq":3,"kind":"rai')
    rec = log.append({"kind": "reset", "alarm": "asystole"})
    log.close()
    assert rec["seq"] == 3, "sequence continues after the last complete record"
    contents = read_events(path)
    assert [e["kind"] for e in contents.events] == ["raised", "latched", "reset"]
    assert contents.skipped == [3]
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[-1])["kind"] == "reset"


def test_log_lines_are_json_with_seq_and_wall_time(tmp_path):
    import numpy as np

    path = tmp_path / "sub" / "events.jsonl"
    with EventLog(path) as log:
        log.append({"kind": "raised", "evidence": {"beats": np.array([1, 2, 3]), "hr": np.float32(150.5)}})
    (rec,) = read_events(path).events
    assert rec["seq"] == 1 and rec["wall"].endswith("+00:00")
    assert rec["evidence"] == {"beats": [1, 2, 3], "hr": 150.5}


def test_missing_log_reads_empty(tmp_path):
    c = read_events(tmp_path / "none.jsonl")
    assert c.events == [] and c.skipped == []
