"""The bedside display end to end, in a real headless Chromium driven by Selenium.

``edge-ecg cart-sim`` streams MIT-BIH 205 (a real record; the annotated VT run at 299 s of the
record is at 28 s of the excerpt) on a pty at real time, with electrodes off at 10-16 s; the daemon
runs as its own process (``edge-ecg run``) with the display on a free loopback port, a PIN, and
its alarm sound going through the real ``aplay`` into ALSA's ``file`` plugin (the speaker is
the one thing that cannot exist here; the file plugin stands where it would be). The page is
loaded once and the scenario runs in order; each test below checks one part of what it saw.

Screenshots go to ``$EDGE_ECG_SCREENSHOTS`` when set (that is how ``docs/display/*.png`` were made:
``EDGE_ECG_SCREENSHOTS=docs/display pytest tests/test_display_e2e.py``), else to tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers.daemon import REPO, cli_env, write_wfdb

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

START_S, STOP_S = 271.0, 311.0  # of record 205: VT run annotated at 299 s -> 28 s of the excerpt
VT_AT = 28.0
LEADOFF = "leadoff@10+6:RA"
PIN = "7351"


def _post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


FLASH_PROBE = """
const done = arguments[arguments.length - 1]; const dur = arguments[0];
const b = document.querySelector(arguments[1]); const t0 = performance.now(); let last = null; const changes = [];
function tick(){ const c = getComputedStyle(b).backgroundColor; const t = performance.now() - t0;
  if (last !== null && c !== last) changes.push(t); last = c;
  if (t < dur) requestAnimationFrame(tick); else done({changes: changes, cls: b.className, color: c}); }
requestAnimationFrame(tick);
"""


def lit_screenshot(b, path: Path) -> None:
    """A screenshot with the flashing alarms held in their bright phase (after the flash rate was
    measured; a screenshot takes longer than half a flash), then flashing again."""
    b.js("document.getAnimations().forEach(a => { a.pause(); a.currentTime = 0; })")
    b.screenshot(path)
    b.js("document.getAnimations().forEach(a => a.play())")


def flash_hz(probe: dict) -> float:
    """Flashes per second from the colour changes the probe saw (two changes per flash cycle)."""
    ch = probe["changes"]
    assert len(ch) >= 3, probe
    return (len(ch) - 1) / 2 / ((ch[-1] - ch[0]) / 1000)


@pytest.fixture(scope="module")
def scenario(mitdb_dir, tmp_path_factory):
    pytest.importorskip("selenium")
    from edge_ecg.display.browser import Browser, find_chromium
    from edge_ecg.records import read_record

    if find_chromium() is None:
        pytest.skip("chromium and chromium-driver are not installed (`make test` installs them as root)")
    tmp = tmp_path_factory.mktemp("display")
    shots = Path(os.environ["EDGE_ECG_SCREENSHOTS"]) if os.environ.get("EDGE_ECG_SCREENSHOTS") else tmp / "shots"
    rec = read_record(mitdb_dir / "205")
    excerpt = rec.slice(int(START_S * rec.fs), int(STOP_S * rec.fs))
    wfdb_path = write_wfdb(excerpt, tmp / "record", "mitdb205")
    state = tmp / "state"
    speaker = tmp / "speaker.wav"
    audio = f'[audio]\ndevice = "file:FILE={speaker},FORMAT=wav"\n' if shutil.which("aplay") else ""
    cfg = tmp / "edge-ecg.toml"
    out: dict = {"shots": shots, "speaker": speaker if audio else None, "state": state}
    # Chromium first (its start-up is the slowest part on a loaded machine), on a blank page until
    # the daemon says where the display is, so the page is up before the electrodes come off
    browser = Browser("about:blank", tmp / "chromium-profile", 1280, 720)
    # the real `edge-ecg cart-sim` command, with electrodes off at 10-16 s
    cart_proc = subprocess.Popen([sys.executable, "-m", "edge_ecg", "cart-sim", str(wfdb_path), "--speed", "1", "--faults", LEADOFF,
                                  "--link", str(tmp / "cart.tty")], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    daemon = None
    try:
        pty = cart_proc.stdout.readline().strip()
        assert pty.startswith("/"), "cart-sim printed no device path"
        # the committed rhythm bundle feeds the findings panel; its thresholds are set to 1 here so that
        # no model alarm joins the scenario's classical ones (the panel shows p against threshold)
        rhythm = REPO / "bundles" / "rhythm"
        bundle = (f'[[bundle]]\npath = "{rhythm}"\nbackend = "onnxruntime"\nthreads = 1\n'
                  'thresholds = { ventricular_ectopy = 1.0, ventricular_run = 1.0, artifact = 1.0 }\n') if (rhythm / "bundle.toml").exists() else ""
        out["bundle"] = bool(bundle)
        cfg.write_text(f'source = "serial:{tmp / "cart.tty"}"\n{bundle}[alarms]\nsignal_lost_s = 2.0\n'
                       f'[sinks]\nstate_dir = "{state}"\nstdout = false\n'
                       f'[display]\nlisten = "127.0.0.1:0"\npin = "{PIN}"\n{audio}')
        daemon = subprocess.Popen([sys.executable, "-m", "edge_ecg", "run", "--config", str(cfg)], cwd=REPO, env=cli_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url_file = state / "display.url"
        end = time.monotonic() + 60
        while not url_file.exists() and time.monotonic() < end and daemon.poll() is None:
            time.sleep(0.05)
        assert url_file.exists(), f"the daemon wrote no display.url: {daemon.stderr.read() if daemon.poll() is not None else ''}"
        url = url_file.read_text().strip()
        out["url"] = url
        browser.driver.get(url)
        b = browser

        # 1. electrodes off at 10-16 s: per-lead LEAD OFF, the medium technical alarm flashing yellow
        out["leads_off"] = b.wait_for("""const s = window.edgeEcg.S; return s.off.some(x => x) && (s.state.alarms || []).some(a => a.alarm === 'leads_off')
            && {off: s.off, source: document.getElementById('source').textContent, banner: document.getElementById('banner').className}""", 30, what="leads off")
        out["leads_off_banner"] = b.wait_for("const b = document.getElementById('banner'); return b.dataset.alarm === 'leads_off' && b.className",
                                             5, what="leads-off banner")
        out["flash_medium"] = b.driver.execute_async_script(FLASH_PROBE, 3500, "#banner")
        lit_screenshot(b, shots / "leads-off.png")

        # 2. normal again: the trace moves, HR shown (a whole sweep of clean signal for the screenshot)
        b.wait_for("return !window.edgeEcg.S.off.some(x => x) && window.edgeEcg.stats.lastHr", 20, what="leads back on and HR")
        mark = b.js("return window.edgeEcg.stats.samplesDrawn")
        b.wait_for(f"return window.edgeEcg.stats.samplesDrawn > {mark} + 1800 || document.getElementById('banner').className.includes('high')", 15)
        x1, n1 = b.js("return [window.edgeEcg.stats.sweepX, window.edgeEcg.stats.samplesDrawn]")
        time.sleep(1.0)
        x2, n2 = b.js("return [window.edgeEcg.stats.sweepX, window.edgeEcg.stats.samplesDrawn]")
        out["sweep"] = (x1, x2, n1, n2)
        out["hr_text"] = b.js("return document.getElementById('hr').textContent")
        out["canvas_lit"] = b.js("""const c = document.getElementById('waves'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let lit = 0; for (let i = 1; i < d.length; i += 4) if (d[i] > 150 && d[i-1] < 120) lit++; return lit;""")
        b.screenshot(shots / "normal.png")

        # 3. VT at 28 s -> red flashing banner
        b.wait_for("const b = document.getElementById('banner'); return b.dataset.alarm === 'ventricular_tachycardia' && b.className.includes('high')",
                   45, what="VT banner")
        out["vt_banner"] = b.js("const b = document.getElementById('banner'); return {cls: b.className, text: b.textContent}")
        out["flash"] = b.driver.execute_async_script(FLASH_PROBE, 2000, "#banner")
        lit_screenshot(b, shots / "high-priority-alarm.png")
        out["alarm_lat"] = b.js("return window.edgeEcg.stats.alarmLat")

        # 4. acknowledge: refused without the secret (direct POST and a wrong PIN), accepted with it
        out["post_no_secret"] = _post(url + "api/ack", {})
        out["post_wrong"] = _post(url + "api/ack", {"secret": "0000"})
        b.js("document.getElementById('ack').click()")
        b.wait_for("return document.getElementById('pin-dialog').open", 5, what="PIN dialog")
        b.js("document.getElementById('pin-input').value = '1111'; document.getElementById('pin-ok').click()")
        out["ui_wrong"] = b.wait_for("return document.getElementById('pin-msg').textContent", 5, what="refusal message")
        out["banner_after_wrong"] = b.js("return document.getElementById('banner').dataset.alarm")
        b.js(f"document.getElementById('pin-input').value = '{PIN}'; document.getElementById('pin-ok').click()")
        b.wait_for("return !document.getElementById('pin-dialog').open", 5, what="dialog closed after the right PIN")
        out["after_ack"] = b.wait_for("""const s = window.edgeEcg.S.state; const vt = (s.alarms || []).find(a => a.alarm === 'ventricular_tachycardia');
            return (!vt || vt.acknowledged) ? {banner: document.getElementById('banner').className, vt: vt || null} : null""", 5, what="VT acknowledged")
        out["stats"] = b.stats()
        out["load"] = os.getloadavg()[0]
        # the evidence snapshot of the VT alarm, from the history
        b.js("document.querySelector('#history-list li[data-alarm=\"ventricular_tachycardia\"] button').click()")
        out["evidence"] = b.wait_for("""const i = document.getElementById('evidence-img');
            return document.getElementById('evidence-dialog').open && i.complete && i.naturalWidth > 0 && {w: i.naturalWidth, h: i.naturalHeight, src: i.src}""",
                                     10, what="evidence snapshot")
        b.js("document.getElementById('evidence-close').click()")

        # 5. relearn rhythm: asks for confirmation first, then goes through with the secret still unlocked
        out["relearn_shown"] = b.js("return !document.getElementById('relearn').hidden")
        b.js("document.getElementById('relearn').click()")
        out["relearn_confirm"] = b.wait_for("const d = document.getElementById('relearn-dialog'); return d.open && d.textContent", 5,
                                            what="relearn confirmation")
        b.screenshot(shots / "relearn-confirm.png")
        b.js("document.getElementById('relearn-ok').click()")
        out["relearn_history"] = b.wait_for("""const li = Array.from(document.querySelectorAll('#history-list li'))
            .find(l => l.dataset.kind === 'operator_action' && l.textContent.includes('relearn')); return li && li.textContent""",
                                            10, what="relearn in the history")
        out["relearn_pin_asked"] = b.js("return document.getElementById('pin-dialog').open")
        out["findings"] = b.js("return Array.from(document.querySelectorAll('#findings-list li')).map(li => li.textContent)")
        out["errors"] = b.console_errors()
        out["history_kinds"] = b.js("return Array.from(document.querySelectorAll('#history-list li')).map(li => li.dataset.kind)")
        out["external"] = b.js("return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))")
    finally:
        if browser is not None:
            browser.close()
        if daemon is not None:
            daemon.terminate()
            try:
                out["daemon_rc"] = daemon.wait(20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                out["daemon_rc"] = daemon.wait()
            out["daemon_err"] = daemon.stderr.read()
            daemon.stderr.close()
        if cart_proc.poll() is None:
            cart_proc.terminate()
            cart_proc.wait(5)
        cart_proc.stdout.close()
    return out


def _events(scenario) -> list[dict]:
    from edge_ecg.alarms import read_events

    return read_events(scenario["state"] / "events.jsonl").events


def test_trace_moves_and_heart_rate_is_shown(scenario):
    x1, x2, n1, n2 = scenario["sweep"]
    assert n2 - n1 > 100, "about 180 display samples a second are drawn"
    assert x1 != x2, "the sweep position moves"
    assert scenario["canvas_lit"] > 1000, "green trace pixels on the canvas"
    assert scenario["hr_text"].isdigit() and 40 <= int(scenario["hr_text"]) <= 200, scenario["hr_text"]
    assert scenario["external"] == [], "everything comes from the daemon"
    # no script errors (the refused acknowledges' 401/403 responses are logged as failed loads)
    assert not [e for e in scenario["errors"] if "Failed to load resource" not in e], scenario["errors"]


def test_vt_raises_a_red_flashing_banner_within_500_ms(scenario):
    assert "high" in scenario["vt_banner"]["cls"] and "flash" in scenario["vt_banner"]["cls"]
    assert "VENTRICULAR TACHYCARDIA" in scenario["vt_banner"]["text"] and "PATIENT" in scenario["vt_banner"]["text"]
    lat = [a["ms"] for a in scenario["alarm_lat"] if a["alarm"] == "ventricular_tachycardia"]
    assert lat and max(lat) <= 500, f"alarm event -> banner on the page: {lat} ms"
    hz = flash_hz(scenario["flash"])
    assert 1.4 <= hz <= 2.8, f"high priority flashes at {hz:.2f} Hz (IEC 60601-1-8: 1.4-2.8 Hz)"
    vt = [e for e in _events(scenario) if e.get("kind") == "raised" and e.get("alarm") == "ventricular_tachycardia"]
    assert vt and VT_AT - 1 <= vt[0]["t"] <= VT_AT + 10, "raised within 10 s of the annotated onset"


def test_samples_reach_the_page_within_250_ms_p95(scenario):
    st = scenario["stats"]
    if scenario["load"] > 3 * (os.cpu_count() or 1):
        # the browser, the daemon and the cart share the cores with whatever else runs: past this
        # the page's own frame clock starves and the figure measures the machine, not the display
        pytest.skip(f"machine overloaded during the run (load {scenario['load']:.1f} on {os.cpu_count()} cores); see bench/bench_display.py")
    draw = np.percentile(st["drawLat"], 95)
    assert len(st["drawLat"]) > 200
    recv = np.percentile(st["recvLat"], 95)
    dropped = st["rafMissed"] / max(1, st["rafFrames"] + st["rafMissed"])
    assert draw <= 250, f"pipeline sample -> drawn on the page p95 {draw:.0f} ms (received p95 {recv:.0f} ms, {100 * dropped:.1f}% frames dropped, load {os.getloadavg()})"


def test_acknowledge_needs_the_secret_and_every_attempt_is_logged(scenario):
    code, reply = scenario["post_no_secret"]
    assert code == 401 and not reply["ok"]
    code, reply = scenario["post_wrong"]
    assert code == 403 and "wrong secret" in reply["error"]
    assert "Refused" in scenario["ui_wrong"]
    assert scenario["banner_after_wrong"] == "ventricular_tachycardia", "a refused acknowledge changes nothing"
    events = _events(scenario)
    actions = [e for e in events if e.get("kind") == "operator_action" and e["action"] == "ack"]
    refused = [e for e in actions if not e["accepted"]]
    accepted = [e for e in actions if e["accepted"]]
    assert len(refused) == 3 and len(accepted) == 1, actions
    assert all(e["origin"]["via"] == "display" and e["origin"]["remote"] == "127.0.0.1" for e in actions)
    assert {e["reason"] for e in refused} == {"secret required", "wrong secret"}
    vt_ack = [e for e in events if e.get("alarm") == "ventricular_tachycardia" and e["kind"] in ("acknowledged", "reset")]
    assert vt_ack and vt_ack[0]["evidence"]["origin"]["via"] == "display", "the manager's event carries the origin"
    assert "operator_action" in scenario["history_kinds"], "the page's history lists the actions"


def test_alarm_history_opens_the_evidence_snapshot(scenario):
    ev = scenario["evidence"]
    assert ev["w"] > 300 and ev["h"] > 100 and "/evidence/" in ev["src"] and "ventricular_tachycardia" in ev["src"]


def test_relearn_asks_first_and_is_logged_with_its_origin(scenario):
    assert scenario["relearn_shown"], "the daemon has rhythm analysis and a PIN: the page offers relearn"
    assert "Never during ventricular tachycardia" in scenario["relearn_confirm"]
    assert "relearn accepted" in scenario["relearn_history"] and not scenario["relearn_pin_asked"], "unlocked by the acknowledge"
    events = _events(scenario)
    notes = [e for e in events if e.get("kind") == "rhythm_relearn"]
    assert len(notes) == 1 and notes[0]["origin"]["via"] == "display" and notes[0]["origin"]["remote"] == "127.0.0.1"


def test_model_findings_are_listed_apart_from_alarms(scenario):
    if not scenario["bundle"]:
        pytest.skip("bundles/rhythm is not in this checkout")
    text = " ".join(scenario["findings"])
    assert "rhythm" in text and all(l in text for l in ("ventricular_ectopy", "ventricular_run", "artifact")), scenario["findings"]
    assert "p=" in text and "/ 1.00" in text
    assert not [e for e in _events(scenario) if (e.get("alarm") or "").startswith("model:")], "findings below threshold never alarm"


def test_leads_off_shows_on_the_page_as_a_medium_technical_alarm(scenario):
    lo = scenario["leads_off"]
    assert any(lo["off"]) and "LEADS OFF" in lo["source"]
    cls = scenario["leads_off_banner"]
    assert "medium" in cls and "technical" in cls and "flash" in cls, cls
    hz = flash_hz(scenario["flash_medium"])
    assert 0.4 <= hz <= 0.8, f"medium priority flashes at {hz:.2f} Hz (IEC 60601-1-8: 0.4-0.8 Hz)"
    raised = [e for e in _events(scenario) if e.get("kind") == "raised" and e.get("alarm") == "leads_off"]
    assert raised and raised[0]["category"] == "technical"


def test_the_daemon_sounded_the_high_priority_burst_and_stopped_cleanly(scenario):
    assert scenario["daemon_rc"] == 0, scenario["daemon_err"][-2000:]
    if scenario["speaker"] is None:
        pytest.skip("aplay (alsa-utils) is not installed")
    from edge_ecg.sound.measure import measure
    from edge_ecg.sound.tones import read_wav

    assert scenario["speaker"].exists(), "aplay wrote the burst to the ALSA file sink"
    x, rate = read_wav(scenario["speaker"])
    m = measure(x, rate)
    # the last burst written: leads off (medium, 3 pulses) or the VT's high burst (10 pulses)
    assert len(m.pulses) in (3, 10), len(m.pulses)
    assert not [e for e in _events(scenario) if e.get("alarm") == "audio_failure"]
