"""The shared export artifacts (``tests/helpers/model_artifacts.py``, fixture ``arts``) fit the budget."""

from __future__ import annotations


def test_tiny_bundle_files_fit_the_repo_budget(arts):
    sizes = {p.name: p.stat().st_size for p in arts.bundle_dir.iterdir() if p.is_file()}
    assert sizes["model.onnx"] + sizes["model.int8.onnx"] < 25e6
    # INT8 weights are a quarter of FP32's; the graph shrinks by well over half.
    assert sizes["model.int8.onnx"] < 0.5 * sizes["model.onnx"]


def test_calibration_provenance_is_recorded(arts):
    from edge_ecg.bundle import load_bundle

    b = load_bundle(arts.bundle_dir)
    cal = b.provenance["calibration"]
    assert cal["sha256"] == arts.calib_sha and cal["n"] == 48 and cal["records"] >= 10
    assert b.provenance["quantization"]["activations"] == "int8 symmetric"
