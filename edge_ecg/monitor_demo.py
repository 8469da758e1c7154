"""``make demo SOURCE=intellivue-vt``: a real IntelliVue MP90 capture, replayed by ``edge-ecg
monitor-sim`` on a pseudo-terminal, through the bedside daemon, with our alarms beside the monitor's.

The capture (``../shared/monitors/intellivue-mp90``: ``intellivue-nsr``, ``-nsr-spo2-85``,
``-nsr-no-pleth``, ``-vt``, ``-vf``) is replayed at ``--speed``, with the MIB cable cut for a few
seconds mid-way (signal lost, then the client associates again). Each alarm the daemon raises is
printed as the demo does for the cart; each alarm the monitor itself raises or clears is printed
as ``[monitor]``; the summary puts the two side by side. Output goes to ``demo-out/``.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

FAULTS = "cut@100+15"  # capture seconds: the MIB cable is pulled for 15 s (6 s of wall time at the default 2.5x)


def main(args) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("edge_ecg.stream.intellivue_source").setLevel(logging.ERROR)  # the demo prints the monitor's alarms itself
    from edge_ecg.alarms.control import request
    from edge_ecg.demo import REPO, Console, _cpu, _describe, toml_config
    from edge_ecg.errors import RecordError
    from edge_ecg.eval.monitor_eval import BUDGET_S, EXPECTED, ONSET_S
    from edge_ecg.service.config import config_from_dict, tomllib
    from edge_ecg.service.daemon import build_daemon, start_daemon
    from edge_ecg.stream.intellivue_source import IntellivueSource, check_uri
    from firmware_bridge.intellivue.capture import resolve_capture
    from firmware_bridge.intellivue.monitor_sim import spawn_monitor_sim

    try:
        capture = resolve_capture(args.source)
    except RecordError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    con = Console()
    name = capture.name.split(".", 1)[0]
    print("edge-ecg demo: a Philips IntelliVue MP90 (replayed capture) on a pseudo-terminal -> the bedside daemon -> alarms")
    print(f"capture: {name} (PERSEUS project, Rhode Island Hospital, MIT licence; ../shared/monitors/intellivue-mp90), "
          f"the MP90's own bytes replayed at {args.speed:g}x with the cable cut at {FAULTS.split('@')[1]} s of capture")
    expected = EXPECTED.get(name)
    print(f"scenario: {'no physiological alarm expected' if expected is None else f'{expected} from the first second (onset {ONSET_S:g} s)'}")
    from firmware_bridge.intellivue.capture import read_capture
    from firmware_bridge.intellivue.monitor_sim import capture_content
    from firmware_bridge.intellivue.nomenclature import ECG_LEADS

    leads = tuple(ECG_LEADS[o.physio_id] for o in capture_content(read_capture(capture))[2] if o.physio_id in ECG_LEADS)
    bundles, notes = _usable_bundles(leads or ("I",))
    for n in notes:
        print(n)
    link = out / "monitor.tty"
    proc, dev = spawn_monitor_sim(capture, "--speed", str(args.speed), "--faults", FAULTS, "--link", str(link), cwd=REPO)
    try:
        print(f"monitor on {dev} (MIB/RS232 as a stable link, like /dev/serial/by-id)")
        state = out / "state"
        cfg_text = toml_config(f"intellivue:{link}", state, bundles)
        (out / "edge-ecg.toml").write_text(cfg_text)
        cfg = config_from_dict(tomllib.loads(cfg_text), origin=str(out / "edge-ecg.toml"), base=out)
        lines: collections.deque = collections.deque()
        raised: list[dict] = []
        monitor_changes: list[dict] = []

        def on_event(e: dict) -> None:
            if e.get("kind") in ("raised", "cleared", "latched", "acknowledged", "triage", "withheld", "audio_paused"):
                lines.append(("ours", e))
            if e.get("kind") == "raised":
                raised.append(e)

        def on_monitor(kind: str, rec: dict) -> None:
            if kind == "alarm":
                lines.append(("monitor", rec))
                monitor_changes.append(rec)

        # the source is made here, not by the daemon, so that the monitor's first alarms reach the console
        port, options = check_uri(cfg.source.partition(":")[2], "source")
        source = IntellivueSource(port, on_monitor=on_monitor, start=False, **options)
        d = build_daemon(cfg, source=source)
        print(f"daemon: config {out / 'edge-ecg.toml'}, {len(bundles)} bundle(s), events -> {cfg.sinks.event_log}")
        d.sinks.listeners.append(on_event)
        source.start()
        wall0, cpu0 = time.monotonic(), _cpu()
        start_daemon(d, ready_timeout_s=30)
        acked = False
        last, last_change = -1.0, time.monotonic()
        try:
            while time.monotonic() - wall0 < 600:
                while lines:
                    who, e = lines.popleft()
                    con.event(_describe(e) if who == "ours" else _describe_monitor(e))
                if not acked and d.pipeline.stream_t >= 120:
                    acked = True
                    reply = request(cfg.sinks.socket_path, {"cmd": "ack"})
                    con.event(f"  [operator] edge-ecg alarms ack -> {len(reply['events'])} change(s), audio {reply['audio']}")
                con.status("  " + d.pipeline.status_line())
                if d.pipeline.stream_t != last:
                    last, last_change = d.pipeline.stream_t, time.monotonic()
                elif proc.poll() is not None and time.monotonic() - last_change > 2.0:
                    break
                time.sleep(0.2)
        finally:
            wall, cpu = time.monotonic() - wall0, _cpu() - cpu0
            d.close()
        while lines:
            who, e = lines.popleft()
            con.event(_describe(e) if who == "ours" else _describe_monitor(e))
        con.status("  " + d.pipeline.status_line(), force=True)
        print()
        _summary(d, name, expected, raised, monitor_changes, wall, cpu, BUDGET_S)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    return 0


def _usable_bundles(leads: tuple[str, ...]) -> tuple[list[dict], list[str]]:
    """The demo bundles that can run on the monitor's leads. A bundle whose manifest asks for a
    12-lead panel, or for more ECG leads (``[input] leads``) than the monitor exports, is passed
    over from its manifest alone (the MP90 captures export lead I only); the others go through
    the cart demo's ``find_bundles`` (hash verification, panel leads)."""
    from edge_ecg.demo import REPO, find_bundles
    from edge_ecg.service.config import tomllib

    notes, runnable = [], False
    for toml in sorted((REPO / "bundles").glob("*/bundle.toml")):
        manifest = tomllib.loads(toml.read_text())
        wanted = tuple(manifest.get("input", {}).get("leads", ()))
        render = manifest.get("render", {})
        if render.get("layout") == "12lead" or len(wanted) > len(leads) or len(render.get("leads", ())) > len(leads):
            need = "a 12-lead panel" if render.get("layout") == "12lead" else f"{max(len(wanted), len(render.get('leads', ())))} ECG leads"
            notes.append(f"bundle {toml.parent.name}: not used (needs {need}; the monitor exports {', '.join(leads)})")
        else:
            runnable = True
    if not runnable:
        return [], notes + ["the daemon runs the classical detectors only"]
    found, more = find_bundles(leads)
    return found, notes + [n for n in more if not any(n.startswith(f"bundle {p.split(' ')[1]}") for p in notes)]


def _describe_monitor(rec: dict) -> str:
    t = rec.get("t") or 0.0
    return f"t={t:6.1f}s [monitor] {rec['change'].upper():<9} {rec['code']:<30} {rec['type']} {rec['source']} {rec['text']!r}"


def _summary(d, name: str, expected: str | None, raised: list[dict], monitor: list[dict], wall: float, cpu: float, budget: float) -> None:
    from edge_ecg.alarms.conditions import CATALOG, Category

    st = d.pipeline.stats.summary(d.pipeline.fs)
    print("summary")
    counts = collections.Counter(e["alarm"] for e in raised)
    print("  our alarms raised: " + (", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "none"))
    physio = [e for e in raised if e["alarm"] in CATALOG and CATALOG[e["alarm"]].category is Category.PHYSIOLOGICAL]
    if expected is None:
        print(f"  no physiological alarm expected: {'none raised' if not physio else f'{len(physio)} raised (false alarms)'}")
    else:
        hit = next((e for e in physio if e["alarm"] == expected), None)
        print(f"  {expected} from the start: " + (f"our alarm at t={hit['t']:.1f} s ({'within' if hit['t'] <= budget else 'beyond'} the {budget:g} s budget)"
                                                 if hit else "our detectors did not raise it"))
    firsts = {}
    for m in monitor:
        if m["change"] == "raised":
            firsts.setdefault((m["code"], m["type"]), m)
    print("  the monitor's own alarms (first raise): " + (", ".join(f"{c} {ty} at t={m['t']:.1f} s" for (c, ty), m in firsts.items()) or "none"))
    lost = [e for e in raised if e["alarm"] == "signal_lost"]
    if lost:
        print(f"  signal lost raised at t={lost[0]['t']:.1f} s (cable cut at {float(FAULTS.split('@')[1].split('+')[0]):.0f} s of capture); "
              f"associations with the monitor: {d.pipeline.source.stats.associations}")
    stream = d.pipeline.stream_t
    print(f"  stream {stream:.0f} s in {wall:.0f} s wall ({stream / max(wall, 1e-9):.1f}x real time); samples missing on the wire: {st['gap_samples']}")
    print(f"  CPU {cpu:.1f} s (daemon and monitor simulator) = {cpu / max(stream, 1e-9):.3f} CPU-s per stream second")
    print(f"  event log {d.cfg.sinks.event_log} (our alarms and the monitor's, one clock)")
