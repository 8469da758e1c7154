"""Audible alarms: the bursts rendered to WAV and measured back against IEC 60601-1-8 Tables 3-4,
the same bursts after a real ``aplay`` wrote them to ALSA's file plugin, and the sounder following
the alarm manager (pause silences it; a missing device is the ``audio_failure`` technical alarm).

The ranges below are the standard's, written out here (not imported from the code under test):
pulse frequency 150-1000 Hz with >= 4 harmonics in 300-4000 Hz within 15 dB of it; effective pulse
duration 75-200 ms (high) or 125-250 ms (medium, low); rise time 10-20 % of it; high burst
x x 2x+td x 0.35-1.30 s x x 2x+td x with x 50-125 ms, medium/low spacing y 125-250 ms;
interburst interval 2.5-15 s (high), 2.5-30 s (medium); pulses within 10 dB of each other.
"""

from __future__ import annotations

import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.alarms import AlarmManager
from edge_ecg.sound import AlarmSounder, SoundConfig
from edge_ecg.sound.measure import bursts, measure
from edge_ecg.sound.tones import BURSTS, RATE, burst, read_wav, write_wav

TD = {"high": (0.075, 0.200), "medium": (0.125, 0.250), "low": (0.125, 0.250)}
PULSES = {"high": 10, "medium": 3, "low": (1, 2)}
INTERBURST = {"high": (2.5, 15.0), "medium": (2.5, 30.0)}


def check_pulses(m, priority: str) -> None:
    n = len(m.pulses)
    assert n == PULSES[priority] if isinstance(PULSES[priority], int) else n in PULSES[priority], f"{priority}: {n} pulses"
    levels = [p.level_dbfs for p in m.pulses]
    assert max(levels) - min(levels) <= 10.0, f"pulse levels differ by more than 10 dB: {levels}"
    for p in m.pulses:
        assert 150 <= p.f0_hz <= 1000, p.f0_hz
        assert sum(1 for h in p.harmonics_db if abs(h) <= 15.0) >= 4, f"harmonics in 300-4000 Hz within 15 dB: {p.harmonics_db}"
        lo, hi = TD[priority]
        assert lo <= p.td_s <= hi, f"{priority} td {p.td_s * 1000:.1f} ms"
        assert 0.10 <= p.rise_s / p.td_s <= 0.20, f"rise {p.rise_s * 1000:.1f} ms of td {p.td_s * 1000:.1f} ms"
        assert p.fall_s > 0
    g = m.gaps_s
    if priority == "high":
        x = g[0]
        assert 0.050 <= x <= 0.125
        for i in (1, 3, 5, 6, 8):
            assert abs(g[i] - x) <= 0.05 * x, f"gap {i + 1}-{i + 2} = {g[i]:.4f} s, x = {x:.4f} s"
        td = np.mean([p.td_s for p in m.pulses])
        for i in (2, 7):
            assert abs(g[i] - (2 * x + td)) <= 0.05 * (2 * x + td), f"gap {i + 1}-{i + 2} = {g[i]:.4f} s, 2x + td = {2 * x + td:.4f} s"
        assert 0.35 <= g[4] <= 1.30, f"gap 5-6 {g[4]:.3f} s"
    else:
        for gap in g:
            assert 0.125 <= gap <= 0.250, f"{priority} spacing {gap:.3f} s"
        assert max(g, default=0) - min(g, default=0) <= 0.05 * max(g, default=1)


@pytest.mark.parametrize("priority", ["high", "medium", "low"])
def test_rendered_wav_meets_iec_60601_1_8(priority, tmp_path):
    spec = BURSTS[priority]
    path = write_wav(tmp_path / f"{priority}.wav", burst(spec))
    x, rate = read_wav(path)
    assert rate == RATE
    m = measure(x, rate)
    check_pulses(m, priority)
    assert np.max(np.abs(x)) == pytest.approx(10 ** (-6 / 20), abs=0.01), "peak at the configured -6 dBFS"


def test_medium_is_not_more_urgent_than_high():
    hi, med = measure(burst(BURSTS["high"]), RATE), measure(burst(BURSTS["medium"]), RATE)
    # IEC 60601-1-8 Table 3 note: td + y of medium >= td + x of high
    assert med.pulses[0].td_s + med.gaps_s[0] >= hi.pulses[0].td_s + hi.gaps_s[0]


@pytest.mark.parametrize("priority", ["high", "medium"])
def test_repeated_bursts_keep_the_interburst_interval(priority):
    spec = BURSTS[priority]
    one = burst(spec, lead_s=0.0)
    period = int(round(spec.period_s * RATE))
    x = np.zeros(period * 2 + one.size)
    for k in range(3):
        x[k * period : k * period + one.size] += one if k * period + one.size <= x.size else 0
    groups = bursts(measure(x, RATE))
    assert [len(g) for g in groups] == [PULSES[priority]] * 3
    for a, b in zip(groups, groups[1:]):
        gap = b[0].start_s - a[-1].stop_s
        lo, hi = INTERBURST[priority]
        assert lo <= gap <= hi, f"interburst {gap:.2f} s"


def test_low_priority_plays_once():
    assert BURSTS["low"].period_s is None


# --- the sounder: the manager's audio state -> aplay -------------------------------------------

def _wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def aplay():
    path = shutil.which("aplay")
    if path is None:
        pytest.skip("aplay (alsa-utils) is not installed; `make test` installs it as root")
    return path


def _manager_with(sounder_box: list) -> AlarmManager:
    return AlarmManager(on_event=lambda e: [s.on_event(e.to_dict()) for s in sounder_box])


def test_aplay_plays_the_high_burst_into_the_alsa_file_sink(aplay, tmp_path):
    """The real aplay, through ALSA, into the file plugin standing where the speaker would be."""
    box: list = []
    mgr = _manager_with(box)
    sink = tmp_path / "speaker.wav"
    s = AlarmSounder(mgr, tmp_path / "sounds", SoundConfig(enabled=True, device=f"file:FILE={sink},FORMAT=wav", probe_s=60))
    box.append(s)
    s.start()
    try:
        assert _wait(lambda: s.state["bursts_played"] == 0 and sink.exists()), "the silent probe opened the device"
        mgr.set_condition("ventricular_tachycardia", True, 1.0)
        assert _wait(lambda: s.bursts_played >= 1 and sink.exists() and sink.stat().st_size > RATE)
        assert _wait(lambda: s.state["playing"] is None or s._current is None or s._current.poll() is not None)
        time.sleep(0.2)
        x, rate = read_wav(sink)
        check_pulses(measure(x, rate), "high")
        assert not s.state["failing"]
    finally:
        s.close()


def _slow_aplay(tmp_path: Path) -> Path:
    """Test double for a speaker (none exists here): plays nothing, takes as long as the WAV lasts,
    and records how it ended. Only the speaker is replaced; the sounder runs as on the unit."""
    log = tmp_path / "speaker.log"
    script = tmp_path / "slow-aplay"
    script.write_text(f"""#!/bin/sh
for a in "$@"; do f="$a"; done
bytes=$(stat -c %s "$f")
trap 'echo "stopped $(basename $f)" >> {log}; exit 143' TERM
echo "start $(basename $f)" >> {log}
sleep $(awk "BEGIN {{ print ($bytes - 44) / 96000 }}") &
wait $!
echo "done $(basename $f)" >> {log}
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_audio_pause_silences_the_running_burst_and_new_high_breaks_through(tmp_path):
    box: list = []
    mgr = _manager_with(box)
    s = AlarmSounder(mgr, tmp_path / "sounds", SoundConfig(enabled=True, device="default", aplay=str(_slow_aplay(tmp_path)), probe_s=600))
    box.append(s)
    log = tmp_path / "speaker.log"
    s.start()
    try:
        assert _wait(lambda: log.exists() and "done probe.wav" in log.read_text())
        mgr.set_condition("leads_off", True, 1.0)  # medium technical
        assert _wait(lambda: "start alarm-medium.wav" in log.read_text())
        mgr.set_condition("ventricular_tachycardia", True, 1.5)  # high: replaces the medium burst at once
        assert _wait(lambda: "start alarm-high.wav" in log.read_text())
        assert "stopped alarm-medium.wav" in log.read_text() or "done alarm-medium.wav" in log.read_text()
        t0 = time.monotonic()
        mgr.pause_audio(2.0, seconds=60, origin={"via": "test"})
        assert _wait(lambda: "stopped alarm-high.wav" in log.read_text(), 2.0), log.read_text()
        assert time.monotonic() - t0 < 1.0, "audio pause silences the burst at once"
        played = s.bursts_played
        time.sleep(0.5)
        assert s.bursts_played == played and mgr.audio() == "paused"
        mgr.set_condition("asystole", True, 3.0)  # a new high-priority alarm breaks through the pause
        assert _wait(lambda: s.bursts_played == played + 1)
    finally:
        s.close()


def test_missing_sound_device_is_a_technical_alarm_not_a_crash(aplay, tmp_path):
    box: list = []
    events: list = []
    mgr = AlarmManager(on_event=lambda e: (events.append(e), [s.on_event(e.to_dict()) for s in box]))
    s = AlarmSounder(mgr, tmp_path / "sounds", SoundConfig(enabled=True, device="hw:CARD=NoSuchCard,DEV=0", probe_s=600))
    box.append(s)
    s.start()
    try:
        assert _wait(lambda: "audio_failure" in mgr.active()), "the start-up probe found the missing device"
        raised = [e for e in events if e.alarm == "audio_failure" and e.kind == "raised"]
        assert raised[0].category == "technical" and raised[0].priority == "medium"
        assert "hw:CARD=NoSuchCard" in raised[0].evidence["device"] and raised[0].evidence["reason"]
        mgr.set_condition("ventricular_tachycardia", True, 2.0)
        assert _wait(lambda: s.failures >= 2), "it keeps trying (the next burst)"
        assert s._thread.is_alive()
    finally:
        s.close()


def test_missing_aplay_program_is_a_technical_alarm(tmp_path):
    box: list = []
    mgr = _manager_with(box)
    s = AlarmSounder(mgr, tmp_path / "sounds", SoundConfig(enabled=True, aplay=str(tmp_path / "no-such-aplay")))
    box.append(s)
    s.start()
    try:
        assert _wait(lambda: "audio_failure" in mgr.active())
        assert "no-such-aplay" in mgr.state("audio_failure").evidence["reason"]
    finally:
        s.close()
