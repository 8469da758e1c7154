"""``make demo``: a simulated cart on a pseudo-terminal, the bedside daemon, live alarms, a summary.

What it does, in about a minute:

1. picks a real-format record: MIT-BIH record 205 from ``../shared/ecg/mitdb-ds1`` (ventricular
   tachycardia at 299 s) when that folder exists, else a synthetic two-lead ECG with a VT run that
   it writes as a WFDB record itself, and says which;
2. starts ``edge-ecg cart-sim`` (a real process speaking the cart protocol on a pty) on an excerpt,
   with electrodes off for a few seconds and an unplug/replug, at a speed-up;
3. runs the daemon on ONNX Runtime with the demo bundles in ``bundles/`` (whatever exists; it
   says which), prints a live one-line status and each alarm with its evidence PNG, acknowledges
   the latched alarms over the control socket halfway, and ends with a summary: alarms raised,
   detection latencies against the record's annotations, windows per second, CPU.

Everything it writes goes to ``demo-out/`` (config, event log, evidence PNGs, the excerpt).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGE_ECG_SHARED", REPO.parent / "shared")) / "ecg"

# The excerpt of MIT-BIH 205 the demo streams: VT runs at 299 s and 303.5 s, an AV-conduction
# rhythm with PVCs around them.
MITDB_RECORD, MITDB_START, MITDB_STOP = "205", 255.0, 375.0
SPEED = 2.5
FAULTS = "leadoff@70+6:RA,unplug@95+7.5"  # stream seconds of the excerpt


def synthetic_ecg(seconds: float = 120.0, fs: float = 360.0, seed: int = 7):
    """Two leads (II, V1) of a sinus rhythm at 72 bpm with a 9-beat VT run at 160 bpm at 44 s.

    Used only when no real record is available (a fresh clone without ``../shared/ecg``): sums of
    Gaussians for P, QRS and T (narrow QRS for sinus beats, wide bizarre complexes without P for
    ventricular beats), plus baseline wander and noise. Returns the record and the VT onset (s).
    """
    from edge_ecg.records import Record

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    sig = np.zeros((t.size, 2))
    beats, vt_onset = [], 44.0
    x = 0.6
    while x < seconds - 1:
        if vt_onset <= x < vt_onset + 9 * 0.375:
            beats.append((x, True))
            x += 0.375
        else:
            beats.append((x, False))
            x += 60.0 / 72.0 * (1 + 0.03 * rng.standard_normal())

    def g(center, width, amp):
        return amp * np.exp(-0.5 * ((t - center) / width) ** 2)

    for r, ventricular in beats:
        if ventricular:
            wave = g(r, 0.035, 1.6) - g(r + 0.06, 0.03, 0.7) - g(r + 0.25, 0.07, 0.45)
            sig[:, 0] += wave * 1000
            sig[:, 1] -= wave * 900
        else:
            wave = g(r - 0.16, 0.02, 0.12) - g(r - 0.02, 0.008, 0.1) + g(r, 0.01, 1.1) - g(r + 0.025, 0.009, 0.25) + g(r + 0.26, 0.05, 0.3)
            sig[:, 0] += wave * 1000
            sig[:, 1] += (g(r - 0.16, 0.02, 0.05) + g(r, 0.01, 0.35) - g(r + 0.02, 0.012, 0.7) + g(r + 0.26, 0.05, 0.1)) * 1000
    sig += 60 * np.sin(2 * np.pi * 0.2 * t)[:, None] + rng.normal(0, 12, sig.shape)
    return Record(signals=sig.astype(np.float32), fs=fs, leads=("II", "V1"), name="synthetic-vt"), vt_onset


def vt_onsets(atr_base: Path, fs: float, start_s: float, stop_s: float) -> list[float]:
    """Annotated VT runs (>= 5 consecutive V beats at > 100 bpm) inside the excerpt, in excerpt seconds."""
    import wfdb

    ann = wfdb.rdann(str(atr_base), "atr")
    beats = [(s, sym) for s, sym in zip(ann.sample, ann.symbol) if sym in "NLRBAaJSVrFejnE/fQ?"]
    out, run = [], []
    for s, sym in beats + [(None, "N")]:
        if sym == "V":
            run.append(s)
            continue
        for i in range(len(run) - 4):
            if np.mean(np.diff(run[i : i + 5])) / fs < 0.6:
                onset = run[i] / fs
                if start_s <= onset < stop_s:
                    out.append(onset - start_s)
                break
        run = []
    return out


def pick_record(out: Path):
    """(record excerpt, description, annotated VT onsets in excerpt seconds)."""
    from edge_ecg.records import read_record

    base = SHARED / "mitdb-ds1" / MITDB_RECORD
    if base.with_suffix(".hea").is_file():
        rec = read_record(base)
        a, b = int(MITDB_START * rec.fs), int(MITDB_STOP * rec.fs)
        onsets = vt_onsets(base, rec.fs, MITDB_START, MITDB_STOP)
        desc = f"MIT-BIH Arrhythmia Database record {MITDB_RECORD} (../shared/ecg/mitdb-ds1), {MITDB_START:.0f}-{MITDB_STOP:.0f} s"
        return rec.slice(a, b), desc, onsets
    rec, onset = synthetic_ecg()
    desc = "a synthetic two-lead ECG with a VT run made by edge_ecg.demo (../shared/ecg is absent on this machine)"
    return rec, desc, [onset]


def write_wfdb(record, folder: Path, name: str) -> Path:
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    n = len(record.leads)
    wfdb.wrsamp(name, fs=record.fs, units=["uV"] * n, sig_name=list(record.leads), p_signal=record.signals.astype(np.float64),
                fmt=["32"] * n, adc_gain=[1.0] * n, baseline=[0] * n, write_dir=str(folder))
    return folder / name


def find_bundles(leads: tuple[str, ...]) -> tuple[list[dict], list[str]]:
    """Demo bundles from ``bundles/`` that fit the record's leads; notes say what was used or skipped."""
    from edge_ecg.bundle import load_bundle

    folder = REPO / "bundles"
    found, notes = [], []
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        return [], ["no bundles in bundles/ yet: the daemon runs the classical detectors only"]
    for path in sorted(p for p in folder.iterdir() if (p / "bundle.toml").is_file()):
        try:
            b = load_bundle(path)
        except Exception as exc:
            notes.append(f"bundle {path.name}: refused ({exc})")
            continue
        spec = b.spec
        need = spec.panel_leads if (spec.layout == "12lead" or spec.leads) else ()
        missing = [l for l in need if l not in leads]
        if missing:
            notes.append(f"bundle {b.name}: not used (needs leads {', '.join(missing)}; the cart sends {', '.join(leads)})")
            continue
        if "triage" in b.name:  # removed from the demo: it does not lift the classical detector (docs/factory.md)
            notes.append(f"bundle {b.name}: not used (out of fold it does not add to the classical VT detector)")
            continue
        found.append({"path": str(path), "role": "findings", "backend": "onnxruntime", "precision": "int8", "threads": 1})
        notes.append(f"bundle {b.name} {b.version}: findings, ONNX Runtime INT8, labels {', '.join(b.label_names)}"
                     + ("" if b.calibrated else " (probabilities not calibrated)"))
    return found, notes


def toml_config(source: str, state: Path, bundles: list[dict], pin: str | None = None) -> str:
    lines = [f'source = "{source}"', ""]
    for b in bundles:
        lines += ["[[bundle]]"] + [f"{k} = {v!r}".replace("'", '"') for k, v in b.items()] + [""]
    # model labels alarm only when validated at the default floors (specificity >= 0.95,
    # sensitivity >= 0.90); everything else is a finding in the event log
    lines += ["[alarms]", "signal_lost_s = 1.0", "", "[alarms.triage]", "annotate_only = true", "", "[sinks]", f'state_dir = "{state}"', "stdout = false", "evidence = true", ""]
    lines += ["[service]", "stall_s = 30.0", ""]
    if pin:  # the bedside display on a free loopback port (docs/display.md)
        lines += ["[display]", 'listen = "127.0.0.1:0"', f'pin = "{pin}"', ""]
    return "\n".join(lines)


class Console:
    """One live status line (rewritten in place on a terminal) with event lines printed above it."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self._last = 0.0

    def event(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K")
        print(text, flush=True)

    def status(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stdout.write("\r\033[K" + text[:160])
            sys.stdout.flush()
        elif force or now - self._last >= 5.0:  # in a log, a status line every 5 s
            print(text, flush=True)
            self._last = now


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_ecg.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "demo-out")
    ap.add_argument("--speed", type=float, default=SPEED)
    ap.add_argument("--source", help="stream a monitor capture instead of the cart, e.g. intellivue-vt (see edge_ecg.monitor_demo)")
    args = ap.parse_args(argv)
    if args.source:
        from edge_ecg.monitor_demo import main as monitor_demo

        return monitor_demo(args)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from edge_ecg.alarms.control import request
    from edge_ecg.service.config import config_from_dict
    from edge_ecg.service.daemon import build_daemon, start_daemon
    from edge_ecg.service.config import tomllib

    out: Path = args.out
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    con = Console()
    print("edge-ecg demo: a simulated cart on a pseudo-terminal -> the bedside daemon -> alarms")
    rec, desc, onsets = pick_record(out)
    print(f"record: {desc}; {rec.duration_s:.0f} s, {len(rec.leads)} leads ({', '.join(rec.leads)}) at {rec.fs:g} Hz")
    if onsets:
        print("annotated VT runs (>= 5 V beats > 100 bpm) at excerpt time " + ", ".join(f"{o:.1f} s" for o in onsets))
    rec_path = write_wfdb(rec, out / "record", rec.name or "excerpt")
    bundles, notes = find_bundles(rec.leads)
    for n in notes:
        print(n)

    link = out / "cart.tty"
    cart_cmd = [sys.executable, "-m", "edge_ecg", "cart-sim", str(rec_path), "--speed", str(args.speed), "--faults", FAULTS, "--link", str(link)]
    print(f"cart: edge-ecg cart-sim {rec_path.name} --speed {args.speed:g} --faults {FAULTS}")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cart = subprocess.Popen(cart_cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        pty = cart.stdout.readline().strip()
        if not pty:
            print("demo: the cart simulator did not start", file=sys.stderr)
            return 1
        print(f"cart on {pty} (stable link {link})")
        state = out / "state"
        import secrets

        pin = f"{secrets.randbelow(10 ** 4):04d}"
        cfg_text = toml_config(f"serial:{link}", state, bundles, pin)
        (out / "edge-ecg.toml").write_text(cfg_text)
        cfg = config_from_dict(tomllib.loads(cfg_text), origin=str(out / "edge-ecg.toml"), base=out)
        t_load = time.monotonic()
        d = build_daemon(cfg)
        print(f"daemon: config {out / 'edge-ecg.toml'}, {len(bundles)} bundle(s) loaded in {time.monotonic() - t_load:.1f} s, events -> {cfg.sinks.event_log}")
        if d.display is not None:
            print(f"display: open {d.display.url} in a browser on this machine (PIN {pin} for acknowledge / audio pause)")
        raised: list[dict] = []
        findings: list[dict] = []
        lines: collections.deque = collections.deque()
        for slot in d.pipeline.slots:
            for g in slot.gates:
                print(f"  {slot.name}:{g.label}: {g.reason}")

        def on_event(e: dict) -> None:
            if e.get("kind") in ("raised", "latched", "cleared", "reset", "acknowledged", "triage", "withheld", "breakthrough", "audio_paused", "audio_resumed", "finding"):
                lines.append(e)
            if e.get("kind") == "raised":
                raised.append(e)
            if e.get("kind") == "finding":
                findings.append(e)

        d.sinks.listeners.append(on_event)
        wall0, cpu0 = time.monotonic(), _cpu()
        start_daemon(d, ready_timeout_s=30)
        acked = False
        duration = rec.duration_s
        try:
            while d.pipeline.stream_t < duration - 0.3 and cart.poll() is None:
                while lines:
                    con.event(_describe(lines.popleft()))
                if not acked and d.pipeline.stream_t >= 0.55 * duration:
                    acked = True
                    reply = request(cfg.sinks.socket_path, {"cmd": "ack"})
                    con.event(f"  [operator] edge-ecg alarms ack -> {len(reply['events'])} change(s), audio {reply['audio']}")
                con.status("  " + d.pipeline.status_line())
                if time.monotonic() - wall0 > 240:
                    break
                time.sleep(0.2)
            end = time.monotonic() + 3.0  # the cart has exited: let the daemon take what is queued
            while d.pipeline.stream_t < duration - 0.3 and time.monotonic() < end:
                time.sleep(0.1)
        finally:
            wall = time.monotonic() - wall0
            cpu = _cpu() - cpu0
            d.close()
        while lines:
            con.event(_describe(lines.popleft()))
        con.status("  " + d.pipeline.status_line(), force=True)
        print()
        _summary(d, raised, onsets, wall, cpu, state, findings)
    finally:
        if cart.poll() is None:
            cart.terminate()
            try:
                cart.wait(5)
            except subprocess.TimeoutExpired:
                cart.kill()
        cart.stdout.close()
    return 0


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _describe(e: dict) -> str:
    kind, alarm, t = e.get("kind"), e.get("alarm") or "", e.get("t", 0.0)
    ev = e.get("evidence") or {}
    if kind == "finding":  # a model finding: event log and reports, never an alarm
        cal = "calibrated" if e.get("calibrated") else "uncalibrated"
        return (f"t={t:6.1f}s FINDING      {e.get('bundle')}:{e.get('finding'):<18} {e.get('state')}: {e.get('title')}, "
                f"p={e.get('p')} ({cal}; threshold {e.get('threshold'):g}) - not an alarm")
    if kind == "raised" and alarm.startswith("model:"):
        return f"t={t:6.1f}s MODEL ALARM  {alarm:<26}{e.get('priority')}, p={ev.get('p')} (validated label)"
    head = f"t={t:6.1f}s {kind.upper():<12} {alarm:<26}"
    if kind == "raised":
        tail = f"{e.get('priority')} {e.get('category')}"
        if "heart_rate" in ev:
            tail += f", HR {ev['heart_rate']}"
        if "p" in ev:
            tail += f", p={ev['p']}"
        if e.get("evidence_png"):
            tail += f", evidence {e['evidence_png']}"
        return head + tail
    if kind == "triage":
        return head + f"{ev.get('decision')} (p_true={ev.get('p_true')}, {ev.get('bundle')})"
    if kind == "withheld":
        return head + f"{ev.get('reason')}"
    return head + f"audio {e.get('audio')}"


def _summary(d, raised: list[dict], onsets: list[float], wall: float, cpu: float, state: Path,
             findings: list[dict] | None = None) -> None:
    st = d.pipeline.stats.summary(d.pipeline.fs)
    print("summary")
    classical = collections.Counter(e["alarm"] for e in raised if not e["alarm"].startswith("model:"))
    model = collections.Counter(e["alarm"] for e in raised if e["alarm"].startswith("model:"))
    print("  classical alarms raised (DSP, technical): " + (", ".join(f"{k} x{v}" for k, v in sorted(classical.items())) or "none"))
    print("  model alarms raised (validated labels only): " + (", ".join(f"{k} x{v}" for k, v in sorted(model.items())) or "none"))
    onsets_by = collections.Counter(f"{e['bundle']}:{e['finding']}" for e in (findings or []) if e.get("state") == "onset")
    print("  model findings (event log, never alarms): " + (", ".join(f"{k} x{v}" for k, v in sorted(onsets_by.items())) or "none"))
    vt = [e["t"] for e in raised if e["alarm"] == "ventricular_tachycardia"]
    for o in onsets:
        hits = [t - o for t in vt if o - 1.0 <= t <= o + 10.0]
        print(f"  VT run annotated at {o:.1f} s: " + (f"alarm after {hits[0]:.1f} s of stream time (budget 10 s)" if hits else "no VT alarm within 10 s (an earlier alarm may still be latched)"))
    lost = [e for e in raised if e["alarm"] == "signal_lost"]
    if lost:
        print(f"  signal lost raised at t={lost[0]['t']:.1f} s (unplug at {float(FAULTS.split('unplug@')[1].split('+')[0]):.1f} s of stream)")
    lo = [e for e in raised if e["alarm"] == "leads_off"]
    if lo:
        print(f"  leads off raised at t={lo[0]['t']:.1f} s (electrodes off at {float(FAULTS.split('leadoff@')[1].split('+')[0]):.1f} s)")
    infer = f", inference p50 {st['infer_ms_p50']} ms" if st["infer_ms_p50"] is not None else ""
    stream = d.pipeline.stream_t
    print(f"  stream {stream:.0f} s in {wall:.0f} s wall ({stream / wall:.1f}x real time); windows classified {st['windows']} ({st['windows'] / wall:.2f}/s), coalesced {st['coalesced']}{infer}")
    print(f"  CPU {cpu:.1f} s total (daemon + cart simulator) = {cpu / max(stream, 1e-9):.3f} CPU-s per stream second; samples lost on the wire: {st['gap_samples']}")
    print(f"  event log {d.cfg.sinks.event_log}; evidence PNGs in {state / 'evidence'}")
    print(f"  try: edge-ecg alarms status --socket <state>/control.sock while a daemon runs (`edge-ecg run --config {d.cfg.origin}`)")


if __name__ == "__main__":
    raise SystemExit(main())
