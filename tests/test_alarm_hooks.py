"""Hooks: a real program per alarm change, with a timeout, never blocking the caller."""

from __future__ import annotations

import json
import sys
import time

from edge_ecg.alarms.hooks import HookRunner


def test_hook_gets_event_on_stdin_and_env(tmp_path):
    out = tmp_path / "out.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "ev = json.loads(sys.stdin.readline())\n"
        f"open({str(out)!r}, 'a').write(json.dumps([ev['kind'], os.environ['EDGE_ECG_ALARM'], os.environ['EDGE_ECG_PRIORITY']]) + '\\n')\n"
    )
    runner = HookRunner([sys.executable, str(script)], timeout_s=10)
    runner.submit({"kind": "raised", "alarm": "asystole", "priority": "high", "audio": "sounding-high"})
    runner.submit({"kind": "reset", "alarm": "asystole", "priority": "high"})
    assert runner.drain(20)
    runner.close()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == [["raised", "asystole", "high"], ["reset", "asystole", "high"]]
    assert runner.stats.failures == 0


def test_hung_hook_is_killed_and_submit_never_blocks(tmp_path):
    runner = HookRunner([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5, max_pending=2)
    t0 = time.monotonic()
    for i in range(20):
        runner.submit({"kind": "raised", "alarm": "noise", "i": i})
    assert time.monotonic() - t0 < 0.2, "submitting must not wait for the hook"
    assert runner.stats.dropped >= 15
    deadline = time.monotonic() + 10
    while runner.stats.timeouts < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner.stats.timeouts >= 1
    runner.close()


def test_failing_hook_is_counted(tmp_path):
    runner = HookRunner([str(tmp_path / "does-not-exist")], timeout_s=1)
    runner.submit({"kind": "raised"})
    runner.drain(5)
    runner.close()
    assert runner.stats.failures == 1 and "does-not-exist" in runner.stats.last_error
