"""Runtimes: auto-selection, ONNX Runtime on CPU, the torch reference, the Classifier."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge_ecg.bundle import load_bundle
from edge_ecg.errors import InputError
from edge_ecg.runtimes import open_runtime, tensorrt_available


def test_auto_selects_onnxruntime_here_and_says_why(arts, caplog):
    ok, why = tensorrt_available()
    if ok:
        pytest.skip("TensorRT is present on this machine")
    with caplog.at_level(logging.INFO, logger="edge_ecg.runtimes"):
        rt = open_runtime(load_bundle(arts.bundle_dir), "auto", "int8", threads=1)
    assert rt.backend == "onnxruntime" and rt.precision == "int8"
    assert "runtime auto-selection: onnxruntime" in caplog.text and why in caplog.text


def test_tensorrt_requested_without_tensorrt_is_a_clear_error(arts):
    if tensorrt_available()[0]:
        pytest.skip("TensorRT is present on this machine")
    with pytest.raises(InputError, match="TensorRT backend unavailable"):
        open_runtime(load_bundle(arts.bundle_dir), "tensorrt", "int8")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnxruntime_reproduces_factory_logits(arts, precision):
    from edge_ecg.render import to_model_input

    b = load_bundle(arts.bundle_dir)
    c = b.check_windows()
    with open_runtime(b, "onnxruntime", precision, threads=1) as rt:
        out = rt.run(to_model_input(c["images"]))
        assert out.dtype == np.float32 and out.shape == (16, 3)
        assert np.abs(out - c[f"logits_{precision}"]).max() < 1e-4
        assert rt.run(to_model_input(c["images"][0])).shape == (1, 3)  # a single (3,H,W) image
        with pytest.raises(InputError, match=r"input batch must be \(N,3,224,224\)"):
            rt.run(np.zeros((1, 3, 100, 100), np.float32))


def test_torch_reference_matches_onnxruntime_fp32(arts):
    pytest.importorskip("torch")
    from edge_ecg.render import to_model_input
    from export.torch_reference import TorchReferenceRuntime

    b = load_bundle(arts.bundle_dir)
    x = to_model_input(b.check_windows()["images"])
    ref = TorchReferenceRuntime.from_model(b, arts.model).run(x)
    with open_runtime(b, "onnxruntime", "fp32", threads=1) as rt:
        assert np.abs(ref - rt.run(x)).max() <= 1e-4


def test_classifier_renders_with_the_bundle_spec(arts, mitdb_dir):
    from edge_ecg.inference import Classifier
    from edge_ecg.records import read_record
    from edge_ecg.render import render

    b = load_bundle(arts.bundle_dir)
    rec = read_record(mitdb_dir / "101.hea")
    n = int(10 * rec.fs)
    windows = [rec.slice(i * n, (i + 1) * n) for i in range(3)]
    with open_runtime(b, "onnxruntime", "int8", threads=1) as rt:
        clf = Classifier(b, rt, batch=2)
        p = clf.predict(windows)
        assert p.shape == (3, 3) and p.dtype == np.float32 and np.all((p > 0) & (p < 1))
        images = np.stack([render(w, b.spec) for w in windows])
        assert np.allclose(p, clf.predict_images(images))
        assert clf.predict([]).shape == (0, 3)
        d = clf.decide(p)
        assert d.shape == (3, 3) and np.array_equal(d[:, 0], p[:, 0] >= 0.7)


def test_verify_and_bench_library_functions(arts):
    from edge_ecg.runtimes.check import benchmark, format_bench, verify

    b = load_bundle(arts.bundle_dir)
    rep = verify(b, "onnxruntime", "int8", runs=3, threads=1)
    assert rep.windows == 16 and rep.top_label_agreement == 1.0 and rep.factory_max_abs_logit_diff < 1e-4 and rep.ok()
    assert rep.max_abs_logit_diff == 0.0 and rep.against == "int8"  # the same graph on the same runtime
    q = verify(b, "onnxruntime", "int8", runs=3, threads=1, against="fp32")  # what quantization changed
    assert q.against == "fp32" and q.max_abs_logit_diff > 0.0 and q.factory_max_abs_logit_diff < 1e-4
    assert "vs onnxruntime fp32" in q.lines()[0]
    rows = benchmark(b, precisions=("fp32", "int8"), runs=3, rounds=1, threads=1)
    assert [(r.backend, r.precision) for r in rows] == [("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    assert all(r.p50_ms > 0 and r.images_per_s > 0 for r in rows)
    assert "vs fp32" in format_bench(rows)


def test_appliance_side_never_imports_torch_or_tensorrt():
    import subprocess
    import sys

    code = ("import sys, edge_ecg.bundle, edge_ecg.inference, edge_ecg.runtimes, edge_ecg.runtimes.check, "
            "edge_ecg.runtimes.onnxruntime_runtime, edge_ecg.runtimes.tensorrt_runtime, edge_ecg.cli.engine_cmd; "
            "bad = [m for m in ('torch', 'tensorrt', 'pycuda', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_cli_verify_bench_and_engine_build_without_tensorrt(arts, capsys):
    from edge_ecg.cli import main

    assert main(["engine", "verify", str(arts.bundle_dir), "--backend", "onnxruntime", "--runs", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "top-label agreement   1.0000" in out and "PASS" in out
    assert main(["bench", "infer", str(arts.bundle_dir), "--runs", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime  fp32" in out and "onnxruntime  int8" in out and "vs fp32" in out
    if not tensorrt_available()[0]:
        assert main(["engine", "build", str(arts.bundle_dir)]) == 2
        assert "TensorRT backend unavailable" in capsys.readouterr().err


def test_cli_export_bundle_end_to_end(mitdb_dir, tmp_path, capsys):
    pytest.importorskip("torch")
    from edge_ecg.cli import main

    records = [str(p) for p in sorted(mitdb_dir.glob("*.hea"))[:2]]
    out = tmp_path / "cli-bundle"
    rc = main(["export", "bundle", "--random-init", "tiny", "-o", str(out), "--labels", "x,y", "--calib", *records,
               "--layout", "strips", "--calib-windows", "8", "--check-windows", "2", "--seed", "5"])
    assert rc == 0, capsys.readouterr()
    b = load_bundle(out)
    assert b.label_names == ("x", "y") and b.architecture == "heartbeit-tiny"
    assert b.provenance["calibration"]["n"] == 8 and b.provenance["calibration"]["seed"] == 5
    assert "untrained" in b.provenance["training"]["note"]
    assert b.check_windows()["images"].shape[0] == 2
    assert main(["export", "bundle", "--random-init", "tiny", "-o", str(out), "--labels", "x,y", "--calib", *records,
                 "--layout", "strips"]) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
