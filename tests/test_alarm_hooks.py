"""Hooks: a real program per alarm change, with a timeout, never blocking the caller; slow hooks
get the high-priority changes first and never lose one, low ones coalesce, every drop is reported."""

from __future__ import annotations

import json
import sys
import time

from edge_ecg.alarms.hooks import HookRunner


def recording_hook(tmp_path, sleep_s: float = 0.0):
    """A real hook program: appends the event it got (stdin) to a file at once, then takes ``sleep_s``."""
    out = tmp_path / "got.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys, time\n"
        "ev = json.loads(sys.stdin.readline())\n"
        f"with open({str(out)!r}, 'a') as f: f.write(json.dumps([ev.get('seq'), ev['kind'], os.environ['EDGE_ECG_ALARM'], os.environ['EDGE_ECG_PRIORITY']]) + '\\n')\n"
        f"time.sleep({sleep_s})\n"
    )
    return [sys.executable, str(script)], out


def got(out) -> list:
    return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []


def test_hook_gets_event_on_stdin_and_env(tmp_path):
    argv, out = recording_hook(tmp_path)
    runner = HookRunner(argv, timeout_s=10)
    runner.submit({"seq": 1, "kind": "raised", "alarm": "asystole", "priority": "high", "audio": "sounding-high"})
    runner.submit({"seq": 2, "kind": "reset", "alarm": "asystole", "priority": "high"})
    assert runner.drain(20)
    runner.close()
    assert got(out) == [[1, "raised", "asystole", "high"], [2, "reset", "asystole", "high"]]  # one alarm: in order
    assert runner.stats.failures == 0


def test_hung_hook_is_killed_and_submit_never_blocks(tmp_path):
    drops = []
    runner = HookRunner([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5, max_pending=2,
                        on_drop=lambda ev, why, st: drops.append((ev["alarm"], why)))
    t0 = time.monotonic()
    for i in range(20):
        runner.submit({"kind": "raised", "alarm": f"noise{i}", "priority": "low"})
    assert time.monotonic() - t0 < 0.2, "submitting must not wait for the hook"
    assert runner.stats.dropped >= 15 and len(drops) == runner.stats.dropped
    assert all(why == "queue full" for _, why in drops)
    deadline = time.monotonic() + 10
    while runner.stats.timeouts < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner.stats.timeouts >= 1
    runner.close()


def test_slow_hook_gets_every_high_priority_change_first_and_low_ones_coalesce(tmp_path):
    argv, out = recording_hook(tmp_path, sleep_s=0.4)
    drops = []
    runner = HookRunner(argv, timeout_s=5, max_pending=3, workers=2, on_drop=lambda ev, why, st: drops.append((ev["seq"], why)))
    seq = 0

    def submit(kind, alarm, priority):
        nonlocal seq
        seq += 1
        runner.submit({"seq": seq, "kind": kind, "alarm": alarm, "priority": priority})

    submit("raised", "noise", "low")  # occupies the general worker for a while
    time.sleep(0.05)
    high = []
    for k in range(12):
        submit("raised", f"lowalarm{k}", "low")
        submit("updated", "leads_off", "medium")  # the same alarm over and over: coalesces
        last_medium = seq
        if k % 3 == 0:
            submit("raised", f"red{k}", "high")
            high.append(seq)
    assert runner.drain(60)
    runner.close()
    delivered = got(out)
    seqs = [d[0] for d in delivered]
    assert all(h in seqs for h in high), "every high-priority change reached the hook"
    assert not any(s in [d for d, _ in drops] for s in high), "no high-priority change dropped"
    assert runner.stats.coalesced >= 10 and runner.stats.dropped >= 5
    assert len(drops) == runner.stats.coalesced + runner.stats.dropped, "every drop reported"
    medium = [d for d in delivered if d[2] == "leads_off"]
    assert len(medium) <= 3 and medium[-1][0] == last_medium, "coalesced: the hook learns the latest state"
    # high-priority changes went out before the low ones that were submitted before them
    first_low_after = min(seqs.index(s) for s in seqs if s not in high and s != 1)
    assert all(seqs.index(h) < first_low_after for h in high[:2])
    assert runner.stats.max_concurrent <= 2


def test_failing_hook_is_counted(tmp_path):
    runner = HookRunner([str(tmp_path / "does-not-exist")], timeout_s=1)
    runner.submit({"kind": "raised"})
    runner.drain(5)
    runner.close()
    assert runner.stats.failures == 1 and "does-not-exist" in runner.stats.last_error
