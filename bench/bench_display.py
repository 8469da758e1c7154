"""Bedside display benchmark: latency, smoothness and serving cost with 12 leads at 500 Hz.

One run streams real 12-lead ECG (LUDB records concatenated, ``../shared/ecg/ludb``) through
``edge-ecg cart-sim`` on a pty at real time, with electrodes off for 2 s every 10 s (alarm
events), into the daemon (in this process, DSP on all 12 leads, no bundles), twice, one after the
other on the same machine:

- **A**: the display on, one headless Chromium page (Debian's chromium, Selenium) showing it;
- **B**: the display off, no page.

It prints and writes (``docs/results/display-bench.json``), with the machine:

- sample -> page latency: pipeline observer time of a block -> the page drew it (p50, p95), and
  -> the page received it; alarm event -> banner updated on the page (every ``leads_off``
  raise/clear), targets p95 <= 250 ms and <= 500 ms;
- dropped frames: requestAnimationFrame intervals longer than one 60 Hz frame, as missed frames
  over all frames (target <= 5%), and the page's own script time per frame (what it costs to draw
  the sweep; a frame is dropped when the browser gets no CPU in time, whoever took it);
- the daemon's CPU for serving the page: CPU seconds of the display's own threads (feed,
  HTTP, the page's SSE thread; from /proc/self/task) per wall second, and the whole process's
  CPU in A minus B, both as % of one core (target < 5%).

    python bench/bench_display.py [--seconds 60] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("EDGE_ECG_SHARED", REPO.parent / "shared")) / "ecg"
TICK = os.sysconf("SC_CLK_TCK")


def ludb_record(seconds: float):
    import wfdb

    from edge_ecg.records import Record
    from edge_ecg.records.leads import STANDARD_12

    folder = SHARED / "ludb"
    if not folder.is_dir():
        raise SystemExit(f"bench_display: needs the LUDB records at {folder}")
    parts, total = [], 0
    for hea in sorted(folder.rglob("*.hea")):
        r = wfdb.rdrecord(str(hea.with_suffix("")))
        names = [n.upper().replace("AVR", "aVR").replace("AVL", "aVL").replace("AVF", "aVF") for n in r.sig_name]
        sig = np.stack([r.p_signal[:, names.index(l)] for l in STANDARD_12], axis=1) * 1000.0
        parts.append(sig.astype(np.float32))
        total += sig.shape[0]
        if total >= seconds * 500 + 5000:
            break
    return Record(signals=np.concatenate(parts), fs=500.0, leads=STANDARD_12, name="ludb-concat"), len(parts)


def thread_cpu_s(prefixes: tuple[str, ...]) -> float:
    total = 0.0
    for t in threading.enumerate():
        if t.name.startswith(prefixes) and t.native_id:
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
    return total


def process_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(record_path: Path, seconds: float, display: bool, size: tuple[int, int], tmp: Path) -> dict:
    from edge_ecg.service.config import config_from_dict
    from edge_ecg.service.daemon import build_daemon, start_daemon

    faults = ",".join(f"leadoff@{t}+2:LA" for t in range(8, int(seconds) + 8, 10))
    link = tmp / f"cart-{display}.tty"
    cart = subprocess.Popen([sys.executable, "-m", "edge_ecg", "cart-sim", str(record_path), "--speed", "1", "--faults", faults,
                             "--link", str(link)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    browser = None
    try:
        assert cart.stdout.readline().strip(), "cart-sim did not start"
        data = {"source": f"serial:{link}", "sinks": {"state_dir": str(tmp / f"state-{display}"), "stdout": False, "evidence": False}}
        if display:
            data["display"] = {"listen": "127.0.0.1:0", "pin": "0000"}
        d = build_daemon(config_from_dict(data, base=tmp))
        start_daemon(d, ready_timeout_s=30)
        if display:
            from edge_ecg.display.browser import Browser

            browser = Browser(d.display.url, tmp / "chromium-profile", *size)
            browser.wait_for("return window.edgeEcg.stats.samplesDrawn > 100", 30)
            browser.js("const s = window.edgeEcg.stats; s.drawLat.length = 0; s.recvLat.length = 0; s.alarmLat.length = 0; s.frameWork.length = 0; s.rafFrames = 0; s.rafMissed = 0;")
        t0, c0 = time.monotonic(), process_cpu_s()
        th0 = thread_cpu_s(("edge-ecg-display", "edge-ecg-sse"))
        time.sleep(seconds)
        wall = time.monotonic() - t0
        out = {"wall_s": round(wall, 1), "process_cpu_s": round(process_cpu_s() - c0, 2), "stream_t": round(d.pipeline.stream_t, 1)}
        if display:
            out["display_threads_cpu_s"] = round(thread_cpu_s(("edge-ecg-display", "edge-ecg-sse")) - th0, 2)
            st = browser.stats()
            out["page"] = {
                "draw_ms_p50": round(float(np.percentile(st["drawLat"], 50)), 1), "draw_ms_p95": round(float(np.percentile(st["drawLat"], 95)), 1),
                "recv_ms_p50": round(float(np.percentile(st["recvLat"], 50)), 1), "recv_ms_p95": round(float(np.percentile(st["recvLat"], 95)), 1),
                "alarm_events": len(st["alarmLat"]),
                "alarm_ms_p50": round(float(np.percentile([a["ms"] for a in st["alarmLat"]], 50)), 1) if st["alarmLat"] else None,
                "alarm_ms_max": round(float(max(a["ms"] for a in st["alarmLat"])), 1) if st["alarmLat"] else None,
                "raf_frames": st["rafFrames"], "raf_missed": st["rafMissed"],
                "frame_script_ms_p50": round(float(np.percentile(st["frameWork"], 50)), 3), "frame_script_ms_p95": round(float(np.percentile(st["frameWork"], 95)), 3),
                "dropped_frames_pct": round(100.0 * st["rafMissed"] / max(1, st["rafFrames"] + st["rafMissed"]), 2),
            }
            out["feed"] = d.display.feed.stats()
        d.close()
        return out
    finally:
        if browser is not None:
            browser.close()
        cart.terminate()
        cart.wait(10)
        cart.stdout.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--size", default="1280x720", help="page size in CSS px")
    ap.add_argument("--no-write", action="store_true", help="print only; do not write docs/results/display-bench.json")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    import logging

    logging.basicConfig(level=logging.WARNING)
    from edge_ecg.demo import write_wfdb
    from edge_ecg.results import machine, write_result

    load_before = [round(x, 2) for x in os.getloadavg()]
    rec, n = ludb_record(args.seconds + 40)
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        path = write_wfdb(rec, tmp / "record", "ludb12")
        a = run(path, args.seconds, True, size, tmp)
        b = run(path, args.seconds, False, size, tmp)
    m = machine()
    load = [round(x, 2) for x in os.getloadavg()]
    page = a["page"]
    serving_pct = 100.0 * a["display_threads_cpu_s"] / a["wall_s"]
    ab_pct = 100.0 * (a["process_cpu_s"] - b["process_cpu_s"]) / a["wall_s"]
    print(f"machine: {m}; load average before {load_before}, after the runs {load}")
    print(f"input: {n} LUDB 12-lead 500 Hz records concatenated, cart-sim at 1x, leads off 2 s every 10 s; {args.seconds:.0f} s per run; page {args.size}")
    print("| measure | median / value | target |")
    print("|---|---|---|")
    print(f"| sample -> drawn on the page | p50 {page['draw_ms_p50']} ms, p95 {page['draw_ms_p95']} ms | p95 <= 250 ms |")
    print(f"| sample -> received by the page | p50 {page['recv_ms_p50']} ms, p95 {page['recv_ms_p95']} ms | - |")
    print(f"| alarm event -> banner ({page['alarm_events']} events) | p50 {page['alarm_ms_p50']} ms, max {page['alarm_ms_max']} ms | <= 500 ms |")
    print(f"| dropped frames at 60 fps, 12 leads | {page['dropped_frames_pct']}% ({page['raf_missed']} of {page['raf_frames'] + page['raf_missed']}) | <= 5% |")
    print(f"| page script time per frame (sweep of 12 leads) | p50 {page['frame_script_ms_p50']} ms, p95 {page['frame_script_ms_p95']} ms | << 16.7 ms |")
    print(f"| daemon CPU for serving (display threads) | {serving_pct:.2f}% of one core | < 5% |")
    print(f"| daemon CPU, display+page minus no display | {ab_pct:.2f}% of one core ({a['process_cpu_s']} vs {b['process_cpu_s']} CPU-s in {a['wall_s']} s) | < 5% |")
    results = {"input": f"LUDB 12-lead 500 Hz ({n} records concatenated) via edge-ecg cart-sim at 1x, leads off 2 s every 10 s",
               "seconds": args.seconds, "page_size": args.size, "load_average_before": load_before, "load_average_after": load, "with_display": a, "without_display": b,
               "serving_cpu_pct_of_core_threads": round(serving_pct, 2), "serving_cpu_pct_of_core_a_minus_b": round(ab_pct, 2),
               "targets": {"draw_ms_p95": 250, "alarm_ms": 500, "dropped_frames_pct": 5, "serving_cpu_pct": 5}}
    if not args.no_write:
        print(write_result("display-bench", results, command="python bench/bench_display.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
