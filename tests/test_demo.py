"""``make demo`` (``python -m edge_ecg.demo``) runs end to end: cart simulator on a pty, daemon, alarms, summary."""

from __future__ import annotations

import subprocess
import sys

import pytest

from test_daemon_support import REPO, cli_env


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo-out"
    proc = subprocess.run([sys.executable, "-m", "edge_ecg.demo", "--out", str(out), "--speed", "20"], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = proc.stdout
    assert "record: " in text and ("MIT-BIH" in text or "synthetic" in text), "the demo says which record it streams"
    assert "RAISED       ventricular_tachycardia" in text
    assert "RAISED       leads_off" in text and "RAISED       signal_lost" in text
    assert "summary" in text and "alarms raised:" in text and "CPU" in text
    assert "alarm after" in text, "VT latency against the annotation is reported"
    pngs = list((out / "state" / "evidence").glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    assert (out / "state" / "events.jsonl").stat().st_size > 0
    assert str(pngs[0].name) in text, "each alarm line names its evidence"
