"""Only validated labels alarm: the bundle's alarm-capable flag and validated operating points,
the daemon's floors, and everything else logged as a finding (never an alarm)."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

from edge_ecg.alarms import AlarmManager, EventLog, read_events
from edge_ecg.bundle import Calibration, Label, OperatingPoint, load_bundle
from edge_ecg.errors import BundleError, ConfigError
from edge_ecg.service.config import BundleConfig, ModelAlarmFloors, config_from_dict
from edge_ecg.service.models import alarm_gate
from edge_ecg.service.pipeline import Pipeline
from edge_ecg.service.sinks import EventSinks
from edge_ecg.stream.replay_source import ReplaySource

from helpers.daemon import tiny_bundle


def _op(name, thr, se, sp, se_lo=None, sp_lo=None):
    return OperatingPoint(name, thr, "validation", {"value": se, "low": se if se_lo is None else se_lo, "high": 1.0},
                          {"value": sp, "low": sp if sp_lo is None else sp_lo, "high": 1.0})


def test_gate_needs_alarm_capable_priority_a_validated_point_and_the_floors():
    floors = ModelAlarmFloors()
    good = Label("af", 0.4, "medium", alarm_capable=True, operating_points=(_op("default", 0.4, 0.93, 0.97, 0.85, 0.95),))
    assert alarm_gate(good, 0.4, floors).alarms
    assert not alarm_gate(dataclasses.replace(good, alarm_capable=False), 0.4, floors).alarms
    assert not alarm_gate(dataclasses.replace(good, priority="none"), 0.4, floors).alarms
    g = alarm_gate(good, 0.3, floors)  # a config override with no validated operating point there
    assert not g.alarms and "no validated operating point at threshold 0.3" in g.reason
    low_sp = dataclasses.replace(good, operating_points=(_op("default", 0.4, 0.99, 0.94),))
    g = alarm_gate(low_sp, 0.4, floors)
    assert not g.alarms and "specificity 0.940 (floor 0.95)" in g.reason
    strict = ModelAlarmFloors(basis="lower_bound")  # the interval's low end: 0.85 < 0.90
    assert not alarm_gate(good, 0.4, strict).alarms
    assert alarm_gate(good, 0.4, ModelAlarmFloors(min_sensitivity=0.8, basis="lower_bound")).alarms
    legacy = Label("af", 0.000345, "medium")  # a 0.2 bundle: no flag, no validation -> finding only
    assert not alarm_gate(legacy, 0.000345, floors).alarms


def test_daemon_config_floors_default_and_validate():
    cfg = config_from_dict({"source": "serial:/dev/x"})
    assert cfg.alarms.models == ModelAlarmFloors(0.95, 0.90, "estimate")
    cfg = config_from_dict({"source": "serial:/dev/x", "alarms": {"models": {"min_specificity": 0.99, "basis": "lower_bound"}}})
    assert cfg.alarms.models.min_specificity == 0.99 and cfg.alarms.models.basis == "lower_bound"
    with pytest.raises(ConfigError, match=r"alarms.models.min_sensitivity: must be <= 1"):
        config_from_dict({"source": "serial:/dev/x", "alarms": {"models": {"min_sensitivity": 1.5}}})
    with pytest.raises(ConfigError, match="alarms.models.basis"):
        config_from_dict({"source": "serial:/dev/x", "alarms": {"models": {"basis": "hope"}}})


def test_bundle_label_extras_round_trip_and_calibrate(tmp_path):
    from export.bundle_writer import write_bundle
    from edge_ecg.render import RenderSpec

    base = tiny_bundle(tmp_path)
    b0 = load_bundle(base)
    cal = Calibration("platt", 0.5, -1.0, "validation records")
    labels = [Label("vrun", 0.3, "high", "Ventricular run", True, cal, (_op("default", 0.3, 0.95, 0.96),)),
              Label("artifact", 0.5, "none", "Artifact", False, Calibration("temperature", 2.0, 0.0))]
    out = write_bundle(tmp_path / "b", name="t", spec=RenderSpec.from_dict(b0.render), labels=labels,
                       fp32_onnx=base / "model.onnx", int8_onnx=base / "model.int8.onnx", window_s=10.0, overwrite=True)
    b = load_bundle(out.root)
    assert b.calibrated and b.manifest["calibrated"] is True
    assert b.labels[0].title == "Ventricular run" and b.labels[0].alarm_capable and b.labels[0].calibration == cal
    assert b.labels[0].operating_point().specificity["value"] == 0.96
    assert not b.labels[1].alarm_capable and b.labels[1].operating_point() is None
    logits = np.array([[0.0, 0.0], [4.0, -2.0]], dtype=np.float32)
    p = b.probabilities(logits)
    assert np.allclose(p[:, 0], 1 / (1 + np.exp(-(0.5 * logits[:, 0] - 1.0))), atol=1e-6)
    assert np.allclose(p[:, 1], 1 / (1 + np.exp(-2.0 * logits[:, 1])), atol=1e-6)
    assert not b0.calibrated  # no calibration: plain sigmoid, and it says so
    text = (out.root / "bundle.toml").read_text()
    (out.root / "bundle.toml").write_text(text.replace('scale = 0.5', 'scale = -0.5', 1))
    with pytest.raises(BundleError, match="label 'vrun': calibration.scale -0.5 must be > 0"):
        load_bundle(out.root)


def _pipeline_events(slot, tmp_path, seconds=24.0):
    from helpers.records import synthetic

    out = io.StringIO()
    log = EventLog(tmp_path / "events.jsonl")
    sinks = EventSinks(log, stdout=out)
    slot.finding_sink = sinks.note
    m = AlarmManager(on_event=lambda e: sinks(e))
    p = Pipeline(ReplaySource(synthetic(seconds), speed=0), m, slots=[slot], lossless=True, analyzer_factory=lambda *a: None)
    p.start()
    assert p.wait(60)
    p.join()
    log.close()
    return read_events(tmp_path / "events.jsonl").events


def test_unvalidated_labels_are_findings_in_the_event_log_never_alarms(tmp_path):
    from edge_ecg.service.models import load_slot

    path = tiny_bundle(tmp_path)
    # both labels over threshold from the first window: vrun is validated at 0.0, artifact is not alarm-capable
    slot = load_slot(BundleConfig(path=path, precision="fp32", threads=1, thresholds={"vrun": 0.0, "artifact": 0.0}))
    assert [g.alarms for g in slot.gates] == [True, False] and slot.priorities == ("high", "none")
    events = _pipeline_events(slot, tmp_path / "a")
    assert [e["alarm"] for e in events if e["kind"] == "raised"] == ["model:vrun"]
    found = [e for e in events if e["kind"] == "finding"]
    assert len(found) == 1 and found[0]["finding"] == "artifact" and found[0]["state"] == "onset"
    assert found[0]["p"] >= 0.0 and found[0]["threshold"] == 0.0 and found[0]["calibrated"] is False
    # the same bundle under stricter floors: vrun (validated 0.99) is a finding too, nothing alarms
    slot = load_slot(BundleConfig(path=path, precision="fp32", threads=1, thresholds={"vrun": 0.0, "artifact": 0.0}),
                     floors=ModelAlarmFloors(min_specificity=0.995))
    events = _pipeline_events(slot, tmp_path / "b")
    assert not [e for e in events if e["kind"] == "raised" and e["alarm"].startswith("model:")]
    assert sorted(e["finding"] for e in events if e["kind"] == "finding") == ["artifact", "vrun"]
    # a threshold override with no validated operating point: a finding, not an alarm
    slot = load_slot(BundleConfig(path=path, precision="fp32", threads=1, thresholds={"vrun": 0.01}))
    assert not slot.gates[0].alarms and "no validated operating point" in slot.gates[0].reason
