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


def _kinds(alarms: list[dict]) -> str:
    """"ventricular_fibrillation x7 (first 16.1 s)" for each alarm kind, in order of first raise."""
    first: dict[str, list[float]] = {}
    for a in alarms:
        first.setdefault(a["alarm"], []).append(a["t"])
    return ", ".join(f"{k} x{len(ts)} (first {ts[0]:.1f} s)" for k, ts in first.items()) or "none"


def table(rows: list[dict]) -> str:
    """Markdown: our alarm times beside the monitor's own alarm log, one row per capture."""
    out = ["| capture | expected | our physiological alarms | latency (budget 10 s) | the MP90's own physiological alarms |",
           "|---|---|---|---|---|"]
    for r in rows:
        lat = "-" if r["expected"] is None else ("missed" if r["latency_s"] is None else f"{r['latency_s']:.1f} s")
        verdict = "met" if r["within_budget"] else "NOT met"
        mon = ", ".join(f"{m['code'].replace('NOM_EVT_', '')} on {m['source'].replace('NOM_', '')} ({m['type']}) from {m['t']:.1f} s"
                        for m in r["monitor_physiological_alarms"]) or "none"
        out.append(f"| {r['capture']} | {r['expected'] or 'none'} | {_kinds(r['our_physiological_alarms'])} | {lat}, {verdict} | {mon} |")
    return "\n".join(out)


def evaluate(captures: list[str], work: Path, *, speed: float = 20.0) -> dict:
    """Every capture decoded and cross-checked, then through monitor-sim and the daemon.

    One run per capture and a single onset each: the latencies are single measurements (no
    interval can be given for n = 1; the captures are a simulator's five scenarios, not patients)."""
    decode = [crosscheck(name) for name in captures]
    rows = [summarise(run_capture(name, work / name, speed=speed)) for name in captures]
    return {"speed": speed, "onset_s": ONSET_S, "budget_s": BUDGET_S,
            "dsp": "the classical detectors of this commit, no model bundle (the captures export ECG lead I only)",
            "decode": decode, "rows": rows, "all_met": all(r["within_budget"] for r in rows),
            "source": "../shared/monitors/intellivue-mp90: PERSEUS project (Rhode Island Hospital), MIT licence"}


def perseus_unescape(escaped: bytes) -> bytes:
    """Transparency removed by sequential replacement, 7D 5D first: how a decoder loses a frame
    whose data holds 7D E0 or 7D E1 (it becomes C0/C1 and the FCS fails)."""
    return escaped.replace(b"\x7d\x5d", b"\x7d").replace(b"\x7d\xe0", b"\xc0").replace(b"\x7d\xe1", b"\xc1")


def crosscheck(capture: str | Path) -> dict:
    """One capture decoded by this client and compared with PERSEUS's decoded ECG I and pleth files."""
    import numpy as np

    from firmware_bridge.intellivue.capture import companion, read_capture, read_perseus_wave, resolve_capture
    from firmware_bridge.intellivue.framing import FrameDecoder, escape, fcs_ok
    from firmware_bridge.intellivue.messages import parse_message, parse_poll_reply
    from firmware_bridge.intellivue.observations import wave_observations

    path = resolve_capture(capture)
    cap = read_capture(path)
    dec = FrameDecoder()
    frames = dec.feed(cap.wire())
    waves: dict[int, dict[int, np.ndarray]] = {0x0101: {}, 0x4BB4: {}}
    lost = []
    for body, frame in zip(cap.bodies, frames):
        msg = parse_message(frame.user_data)
        if msg.command_type != 7:
            continue
        reply = parse_poll_reply(msg)
        for _ctx, obs in reply.observations:
            for w in wave_observations(obs.handle, obs.attributes):
                if w.physio_id in waves:
                    waves[w.physio_id][reply.rel_time] = w.samples
                    if not fcs_ok(perseus_unescape(escape(body))) and reply.rel_time not in lost:
                        lost.append(reply.rel_time)
    out = {"capture": cap.name, "frames": len(cap.bodies), "fcs_valid": sum(fcs_ok(b) for b in cap.bodies),
           "decoded_frames": dec.stats.frames, "bad_frames": dec.stats.bad_frames,
           "replies_perseus_lost": len(lost)}
    for pid, kind in ((0x0101, "ecg_i"), (0x4BB4, "pleth")):
        _t, ref = read_perseus_wave(companion(path, kind))
        rts = sorted(waves[pid])
        ours = np.concatenate([waves[pid][rt] for rt in rts]).astype(np.int64)
        kept = np.concatenate([waves[pid][rt] for rt in rts if rt not in lost]).astype(np.int64)
        same = kept.size == ref.size
        out[kind] = {"samples": int(ours.size), "perseus_samples": int(ref.size),
                     "in_replies_perseus_lost": int(ours.size - kept.size),
                     "differing_samples_elsewhere": int(np.count_nonzero(kept != ref)) if same else None}
    return out


def decode_table(rows: list[dict]) -> str:
    out = ["| capture | frames (FCS valid) | ECG I samples: ours / PERSEUS | ECG I values differing | pleth samples: ours / PERSEUS | pleth values differing |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        e, p = r["ecg_i"], r["pleth"]
        extra = f" (+{e['in_replies_perseus_lost']} in the reply PERSEUS lost)" if e["in_replies_perseus_lost"] else ""
        out.append(f"| {r['capture']} | {r['frames']} ({r['fcs_valid']}) | {e['samples']} / {e['perseus_samples']}{extra} | "
                   f"{e['differing_samples_elsewhere']} | {p['samples']} / {p['perseus_samples']} | {p['differing_samples_elsewhere']} |")
    return "\n".join(out)
