"""The IntelliVue captures through the whole bedside chain, beside the monitor's own alarms.

For each capture: ``edge-ecg monitor-sim`` (a real process replaying the MP90's bytes on a pty,
faster than real time) -> ``IntellivueSource`` -> the daemon (classical DSP alarms, no model
bundle) -> its event log, which holds our alarms and, written by the source, every alarm the
monitor raised or cleared. Times are stream time (seconds of the monitor's RelativeTime since
the first wave sample), so ours and the monitor's sit on one clock.

Onsets: each scenario holds one rhythm from the first sample to the last (the patient simulator
was set before the capture began; the monitor's own VT/asystole alarm is already active at its
first alarm poll, 0.128 s in), so the onset is stream time 0 and the IEC 60601-2-27 budget is an
alarm by 10 s. NSR scenarios should raise no physiological alarm at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.alarms.conditions import CATALOG, Category

# what each scenario should raise (None: no physiological alarm), and its onset in stream seconds
EXPECTED = {
    "1A-nsr": None,
    "1B-nsr-spo2-85": None,
    "1C-nsr-no-pleth": None,
    "1D-vt": "ventricular_tachycardia",
    "1E-vf": "ventricular_fibrillation",
}
ONSET_S = 0.0
BUDGET_S = 10.0


@dataclass(frozen=True)
class RunOutcome:
    capture: str
    stream_s: float
    samples: int
    gap_samples: int
    ours: list[dict]  # our alarm raises: alarm, t, priority, category
    monitor: list[dict]  # the monitor's alarm changes: change, t, type, source, code, text
    wall_s: float


def run_capture(capture: str | Path, state_dir: Path, *, speed: float = 20.0, timeout_s: float = 120.0) -> RunOutcome:
    """One capture through monitor-sim and the daemon (in this process); the event log stays in ``state_dir``."""
    from edge_ecg.alarms.event_log import read_events
    from edge_ecg.service.config import config_from_dict
    from edge_ecg.service.daemon import build_daemon, start_daemon
    from firmware_bridge.intellivue.capture import resolve_capture
    from firmware_bridge.intellivue.monitor_sim import spawn_monitor_sim

    path = resolve_capture(capture)
    state_dir.mkdir(parents=True, exist_ok=True)
    link = state_dir / "monitor.tty"
    proc, dev = spawn_monitor_sim(path, "--speed", str(speed), "--link", str(link))
    t0 = time.monotonic()
    try:
        cfg = config_from_dict({"source": f"intellivue:{dev}", "sinks": {"state_dir": str(state_dir), "stdout": False, "evidence": False}},
                               origin=str(state_dir / "edge-ecg.toml"), base=state_dir)
        d = build_daemon(cfg, slots=[])
        start_daemon(d, ready_timeout_s=30)
        try:
            last, last_change = -1.0, time.monotonic()
            while time.monotonic() - t0 < timeout_s and d.pipeline.error is None:
                time.sleep(0.1)
                if d.pipeline.stream_t != last:
                    last, last_change = d.pipeline.stream_t, time.monotonic()
                elif proc.poll() is not None and time.monotonic() - last_change > 1.5:
                    break  # the replay ended and the daemon has taken everything
        finally:
            d.close()
        if d.pipeline.error is not None:
            raise RuntimeError(f"{path.name}: pipeline failed: {d.pipeline.error}")
        stats = d.pipeline.stats
        events = read_events(cfg.sinks.event_log).events
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    ours = [{"alarm": e["alarm"], "t": e["t"], "priority": e.get("priority"), "category": e.get("category")}
            for e in events if e.get("kind") == "raised"]
    monitor = [{k: e.get(k) for k in ("change", "t", "type", "source", "code", "text")} for e in events if e.get("kind") == "monitor_alarm"]
    return RunOutcome(path.name.split(".", 1)[0], round(d.pipeline.stream_t, 3), stats.samples, stats.gap_samples, ours, monitor,
                      round(time.monotonic() - t0, 1))


def summarise(run: RunOutcome) -> dict:
    """The row of the results table: expected alarm, our first such alarm and its latency, any
    unexpected physiological alarm, and the monitor's own alarms (first raise of each)."""
    expected = EXPECTED.get(run.capture)
    physio = [a for a in run.ours if CATALOG.get(a["alarm"]) is not None and CATALOG[a["alarm"]].category is Category.PHYSIOLOGICAL]
    hit = next((a for a in physio if a["alarm"] == expected), None) if expected else None
    latency = None if hit is None else round(hit["t"] - ONSET_S, 2)
    unexpected = [a for a in physio if a["alarm"] != expected]
    first_monitor: dict[tuple, dict] = {}
    for m in run.monitor:
        if m["change"] == "raised":
            first_monitor.setdefault((m["type"], m["source"], m["code"]), m)
    monitor_physio = [m for m in first_monitor.values() if str(m["type"]).endswith("_P_AL")]
    if expected is None:
        ok = not physio
    else:
        ok = latency is not None and latency <= BUDGET_S
    return {
        "capture": run.capture,
        "expected": expected,
        "onset_s": ONSET_S if expected else None,
        "our_alarm_t": None if hit is None else hit["t"],
        "latency_s": latency,
        "within_budget": ok,
        "our_physiological_alarms": [{"alarm": a["alarm"], "t": a["t"]} for a in physio],
        "unexpected_physiological": [{"alarm": a["alarm"], "t": a["t"]} for a in unexpected],
        "our_technical_alarms": [{"alarm": a["alarm"], "t": a["t"]} for a in run.ours if a not in physio],
        "monitor_physiological_alarms": [{"code": m["code"], "source": m["source"], "type": m["type"], "t": m["t"], "text": m["text"]} for m in monitor_physio],
        "monitor_technical_alarms": [{"code": m["code"], "source": m["source"], "type": m["type"], "t": m["t"], "text": m["text"]}
                                     for m in first_monitor.values() if m not in monitor_physio],
        "stream_s": run.stream_s,
        "samples": run.samples,
        "gap_samples": run.gap_samples,
        "wall_s": run.wall_s,
    }


def table(rows: list[dict]) -> str:
    """Markdown: our alarm times beside the monitor's own alarm log, one row per capture."""
    out = ["| capture | expected | our physiological alarms (t, s) | latency vs 10 s budget | the MP90's own physiological alarms (t, s) |",
           "|---|---|---|---|---|"]
    for r in rows:
        ours = ", ".join(f"{a['alarm']} {a['t']:.1f}" for a in r["our_physiological_alarms"][:4]) or "none"
        if len(r["our_physiological_alarms"]) > 4:
            ours += f" (+{len(r['our_physiological_alarms']) - 4} more)"
        lat = "-" if r["expected"] is None else ("missed" if r["latency_s"] is None else f"{r['latency_s']:.1f} s")
        verdict = "met" if r["within_budget"] else "NOT met"
        mon = ", ".join(f"{m['code'].replace('NOM_EVT_', '')} ({m['type']}) {m['t']:.1f}" for m in r["monitor_physiological_alarms"]) or "none"
        out.append(f"| {r['capture']} | {r['expected'] or 'no physiological alarm'} | {ours} | {lat} ({verdict}) | {mon} |")
    return "\n".join(out)


def evaluate(captures: list[str], work: Path, *, speed: float = 20.0) -> dict:
    rows = []
    for name in captures:
        rows.append(summarise(run_capture(name, work / name, speed=speed)))
    return {"speed": speed, "onset_s": ONSET_S, "budget_s": BUDGET_S, "dsp": "today's classical detectors, no model bundle",
            "rows": rows, "all_met": all(r["within_budget"] for r in rows)}
