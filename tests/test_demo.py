"""``make demo`` (``python -m edge_ecg.demo``) runs end to end: cart simulator on a pty, daemon, alarms, summary."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.daemon import REPO, cli_env


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
    assert "summary" in text and "classical alarms raised" in text and "CPU" in text
    # classical alarms and model findings apart; a model label alarms only if validated, and none
    # does on this record's sinus / AV-conduction stretches (events.jsonl: nothing model: outside VT)
    assert "model alarms raised (validated labels only):" in text and "model findings (event log, never alarms):" in text
    assert "vt-triage: not used" in text or not (REPO / "bundles" / "vt-triage").is_dir()
    import json

    events = [json.loads(line) for line in (out / "state" / "events.jsonl").read_text().splitlines() if line.strip()]
    model_alarms = [e for e in events if e.get("kind") == "raised" and str(e.get("alarm", "")).startswith("model:")]
    assert not [e for e in model_alarms if not 40.0 <= e["t"] <= 62.0], model_alarms  # only during the VT runs (44-49 s)
    assert "alarm after" in text, "VT latency against the annotation is reported"
    pngs = list((out / "state" / "evidence").glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    assert (out / "state" / "events.jsonl").stat().st_size > 0
    assert str(pngs[0].name) in text, "each alarm line names its evidence"
