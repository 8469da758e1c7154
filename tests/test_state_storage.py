"""The state directory on a disk that fills up: the event log holds what the disk refuses (and
writes it, in order, once there is room), never leaves a half line, rotates; pruning deletes the
oldest evidence first and never the live log; the alarm state file is replaced atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ecg.alarms.event_log import EventLog, read_all_events
from edge_ecg.service.storage import AlarmStateFile, Budget, StateStorage, StorageHealth, budget_for
from helpers.faults import tmpfs_prefix
from helpers.daemon import REPO, cli_env


def _files(folder: Path, names_sizes: list[tuple[str, int]], t0: float = 1_000_000.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, size) in enumerate(names_sizes):
        p = folder / name
        p.write_bytes(b"x" * size)
        os.utime(p, (t0 + k, t0 + k))


def test_make_room_deletes_oldest_evidence_then_oldest_segments_never_the_live_log(tmp_path):
    _files(tmp_path / "evidence", [("a.png", 3000), ("b.png", 3000), ("c.png", 3000)])
    _files(tmp_path, [("events.jsonl.2", 2000), ("events.jsonl.1", 2000), ("events.jsonl", 2000), ("alarm-state.json", 100)])
    s = StateStorage(tmp_path, Budget(total_bytes=10_000, reserve_bytes=0, segment_bytes=16384), StorageHealth())
    s.make_room()  # 15100 bytes used, 10000 allowed: the two oldest PNGs go
    assert sorted(p.name for p in (tmp_path / "evidence").iterdir()) == ["c.png"]
    assert (tmp_path / "events.jsonl.2").exists()
    s.make_room(need_bytes=4000)  # then the last PNG and the oldest segment
    assert not list((tmp_path / "evidence").iterdir()) and not (tmp_path / "events.jsonl.2").exists()
    assert (tmp_path / "events.jsonl.1").exists()
    s.make_room(need_bytes=50_000)  # more than can ever be freed
    assert (tmp_path / "events.jsonl").exists() and (tmp_path / "alarm-state.json").exists(), "never the live log or the state"
    assert s.deleted_files == 5


def test_budget_shrinks_to_a_small_filesystem(tmp_path):
    b = budget_for(tmp_path, 256, 16)
    st = os.statvfs(tmp_path)
    assert b.total_bytes <= 0.9 * st.f_blocks * st.f_frsize and b.reserve_bytes <= 0.1 * st.f_blocks * st.f_frsize
    assert 16 * 1024 <= b.segment_bytes <= 4 * 1024 * 1024


def test_event_log_rotates_and_reads_back_in_order(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path, segment_bytes=2000) as log:
        for i in range(60):
            log.append({"kind": "note", "i": i})
    assert log.rotations >= 2 and (tmp_path / "events.jsonl.2").exists()
    seq = [e["seq"] for e in read_all_events(path).events]
    assert seq == list(range(1, 61))
    with EventLog(path, segment_bytes=2000) as log:  # a restart right after a rotation: seq continues
        assert log.append({"kind": "note"})["seq"] == 61


_FULL_DISK = r"""
import json, os, sys
from pathlib import Path
from edge_ecg.alarms.event_log import EventLog, read_events
from edge_ecg.service.storage import StorageHealth
state = Path(sys.argv[1])
health = StorageHealth()
log = EventLog(state / "events.jsonl", health=health)        # opened on a full disk
out = {"open_ok": True}
recs = [log.append({"kind": "raised", "alarm": "ventricular_tachycardia", "pad": "x" * 200, "i": i}) for i in range(5)]
out["returned"] = [r["seq"] for r in recs]
out["unsent_while_full"] = log.unsent
out["failure"] = health.failure()["reason"] if health.failure() else None
out["on_disk_while_full"] = (state / "events.jsonl").read_bytes().decode()
os.remove(state / "filler")                                  # room again
out["unsent_after_retry"] = log.retry()
out["failure_after"] = health.failure()
out["on_disk"] = [e["seq"] for e in read_events(state / "events.jsonl").events]
out["skipped"] = read_events(state / "events.jsonl").skipped
log.close()
print(json.dumps(out))
"""


def test_event_log_on_a_full_tmpfs_holds_then_writes_every_record(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    prefix = tmpfs_prefix(state, "64k", fill=True)
    if prefix is None:
        pytest.skip("neither a root mount namespace nor a user+mount namespace is allowed here: no private tmpfs")
    out = subprocess.run(prefix + [sys.executable, "-c", _FULL_DISK, str(state)], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    assert got["returned"] == [1, 2, 3, 4, 5], "append returns the record even when the disk refuses it"
    assert got["unsent_while_full"] == 5 and "ENOSPC" in got["failure"]
    assert got["on_disk_while_full"] == "", "no half line left behind"
    assert got["unsent_after_retry"] == 0 and got["failure_after"] is None
    assert got["on_disk"] == [1, 2, 3, 4, 5] and got["skipped"] == []


def test_alarm_state_file_is_replaced_atomically_and_a_bad_one_is_not_fatal(tmp_path):
    f = AlarmStateFile(tmp_path / "alarm-state.json", StorageHealth())
    assert f.load() == (None, "")
    assert f.save({"version": 1, "alarms": [{"alarm": "asystole"}]})
    assert f.load()[0]["alarms"][0]["alarm"] == "asystole"
    assert not (tmp_path / "alarm-state.json.tmp").exists()
    (tmp_path / "alarm-state.json").write_text('{"version": 1, "alarms": [')  # torn by a crash of an older writer
    snap, note = f.load()
    assert snap is None and "not valid JSON" in note
