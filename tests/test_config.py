"""Daemon config: a TOML file, every error names the file, the key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_ecg.alarms import Priority
from edge_ecg.errors import ConfigError
from edge_ecg.service.config import load_config

REPO = Path(__file__).resolve().parents[1]

GOOD = """
source = "replay:rec/100?speed=20"

[[bundle]]
path = "bundles/rhythm"
window_s = 10
hop_s = 2
backend = "onnxruntime"
precision = "int8"
thresholds = { afib = 0.7 }
smoothing = 3

[[bundle]]
path = "bundles/vt-triage"
role = "triage"

[alarms]
audio_pause_s = 90
priorities = { noise = "medium" }
[alarms.triage]
conditions = ["ventricular_tachycardia"]
max_steps = 1
floor = "medium"

[sinks]
state_dir = "state"
hook = ["/usr/bin/true", "--beep"]
"""


def write(tmp_path, text):
    p = tmp_path / "edge-ecg.toml"
    p.write_text(text)
    return p


def test_good_config_parses_with_paths_relative_to_file(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.source == f"replay:{tmp_path / 'rec/100'}?speed=20"
    assert [b.role for b in cfg.bundles] == ["findings", "triage"]
    assert cfg.bundles[0].path == tmp_path / "bundles/rhythm"
    assert cfg.bundles[0].thresholds == {"afib": 0.7} and cfg.bundles[0].smoothing == 3
    assert cfg.alarms.audio_pause_s == 90 and cfg.alarms.priorities == {"noise": Priority.MEDIUM}
    assert cfg.alarms.triage.floor is Priority.MEDIUM
    assert cfg.sinks.event_log == tmp_path / "state" / "events.jsonl"
    assert cfg.sinks.hook == ("/usr/bin/true", "--beep")


@pytest.mark.parametrize(
    "text, key, words",
    [
        ('source = "usb:/dev/x"', "source", "serial:/dev/DEVICE"),
        ('', "source", "missing"),
        ('source = "replay:x?speed=fast"', "source", "not a number"),
        ('source = "replay:x?sped=2"', "source", "allowed: block, loop, speed, start, stop"),
        ('source = "serial:/dev/ttyACM0"\n[[bundle]]\npath = "b"\nbackend = "cuda"', "bundle[0].backend", "allowed: auto, onnxruntime, tensorrt"),
        ('source = "serial:/dev/ttyACM0"\n[[bundle]]\npath = "b"\nprecision = "fp16"', "bundle[0].precision", "allowed: int8, fp32"),
        ('source = "serial:/dev/ttyACM0"\n[[bundle]]\npath = "b"\nrole = "judge"', "bundle[0].role", "allowed: findings, triage"),
        ('source = "serial:/dev/ttyACM0"\n[[bundle]]\npath = "b"\nhop_s = 12\nwindow_s = 10', "bundle[0].hop_s", "longer than the window"),
        ('source = "serial:/dev/ttyACM0"\n[[bundle]]\npath = "b"\nthresholds = { afib = 2 }', "bundle[0].thresholds.afib", "must be <= 1"),
        ('source = "serial:/dev/ttyACM0"\n[alarms]\naudio_pause_s = -1', "alarms.audio_pause_s", "> 0"),
        ('source = "serial:/dev/ttyACM0"\n[alarms]\naudio_pause_s = 3600', "alarms.audio_pause_s", "up to 300"),
        ('source = "serial:/dev/ttyACM0"\n[alarms.priorities]\nasystole = "urgent"', "alarms.priorities.asystole", "allowed: high, medium, low"),
        ('source = "serial:/dev/ttyACM0"\n[alarms.priorities]\nvtach = "high"', "alarms.priorities.vtach", "allowed: asystole"),
        ('source = "serial:/dev/ttyACM0"\n[alarms.triage]\nconditions = ["vt"]', "alarms.triage.conditions", "ventricular_tachycardia"),
        ('source = "serial:/dev/ttyACM0"\n[sinks]\nstdout = "yes"', "sinks.stdout", "true or false"),
        ('source = "serial:/dev/ttyACM0"\n[service]\nqueue_blocks = 1.5', "service.queue_blocks", "integer"),
        ('source = "serial:/dev/ttyACM0"\nsinks = 3', "sinks", "must be a table"),
        ('source = "serial:/dev/ttyACM0"\nsink = {}', "sink", "allowed: alarms, audio, bundle, display, dsp, service, sinks, source"),
    ],
)
def test_errors_name_key_and_allowed_values(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and f": {key}" in msg and words in msg, msg


def test_dsp_keys_are_checked_by_the_analyzer_config(tmp_path):
    pytest.importorskip("edge_ecg.dsp.config")
    path = write(tmp_path, 'source = "serial:/dev/ttyACM0"\n[dsp.filters]\nmains_hz = 55')
    with pytest.raises(ConfigError, match="mains_hz"):
        load_config(path)


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "source = "))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_shipped_default_config_is_valid():
    cfg = load_config(REPO / "systemd" / "edge-ecg.toml")
    assert cfg.source.startswith("serial:")
    assert str(cfg.sinks.state_dir) == "/var/lib/edge-ecg"
